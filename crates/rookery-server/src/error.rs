//! The two kinds of protocol error, never mixed (RFC 6120 §4.9 and §8.3):
//! a [`StreamError`] closes the stream, a [`StanzaError`] bounces one stanza.

use crate::ns;
use crate::xml::{ElementExt, el};
use minidom::Element;

/// Stream error conditions of RFC 6120 §4.9.3 that the server emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamCondition {
    BadFormat,
    Conflict,
    ConnectionTimeout,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    ResourceConstraint,
    SystemShutdown,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamCondition {
    pub fn as_str(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            ResourceConstraint => "resource-constraint",
            SystemShutdown => "system-shutdown",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

/// An error that ends the stream: sent as `<stream:error/>`, then `</stream:stream>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({text})", condition.as_str())]
pub struct StreamError {
    pub condition: StreamCondition,
    /// Human-readable explanation, sent in `<text/>`.
    pub text: String,
}

impl StreamError {
    pub fn new(condition: StreamCondition, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: text.into(),
        }
    }

    /// `system-shutdown`, for every stream the server ends when it stops.
    pub fn shutdown() -> Self {
        StreamError::new(
            StreamCondition::SystemShutdown,
            "the server is shutting down",
        )
    }

    /// The `<stream:error>` element, serialised by hand because its prefix is the stream's.
    pub fn to_xml(&self) -> String {
        format!(
            "<stream:error><{} xmlns='{}'/><text xmlns='{}' xml:lang='en'>{}</text></stream:error>",
            self.condition.as_str(),
            ns::STREAM_ERRORS,
            ns::STREAM_ERRORS,
            crate::xml::escape(&self.text)
        )
    }
}

impl From<rookery_xml::FramingError> for StreamError {
    fn from(e: rookery_xml::FramingError) -> Self {
        match e {
            rookery_xml::FramingError::NotWellFormed(t) => {
                StreamError::new(StreamCondition::NotWellFormed, t)
            }
            rookery_xml::FramingError::PolicyViolation(t) => {
                StreamError::new(StreamCondition::PolicyViolation, t)
            }
        }
    }
}

/// Stanza error types of RFC 6120 §8.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// Stanza error conditions of RFC 6120 §8.3.3, each with its usual error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        use Condition::*;
        match self {
            BadRequest => "bad-request",
            Conflict => "conflict",
            FeatureNotImplemented => "feature-not-implemented",
            Forbidden => "forbidden",
            Gone => "gone",
            InternalServerError => "internal-server-error",
            ItemNotFound => "item-not-found",
            JidMalformed => "jid-malformed",
            NotAcceptable => "not-acceptable",
            NotAllowed => "not-allowed",
            NotAuthorized => "not-authorized",
            PolicyViolation => "policy-violation",
            RecipientUnavailable => "recipient-unavailable",
            RegistrationRequired => "registration-required",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
            SubscriptionRequired => "subscription-required",
            UndefinedCondition => "undefined-condition",
            UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 §8.3.3 pairs with the condition.
    pub fn default_type(self) -> ErrorType {
        use Condition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation => ErrorType::Modify,
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            InternalServerError | RecipientUnavailable | RemoteServerTimeout
            | ResourceConstraint | UnexpectedRequest => ErrorType::Wait,
            _ => ErrorType::Cancel,
        }
    }
}

/// An error returned to the sender of one stanza; the stream goes on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{} ({text})", condition.as_str())]
pub struct StanzaError {
    pub error_type: ErrorType,
    pub condition: Condition,
    /// Human-readable explanation, sent in `<text/>` when not empty.
    pub text: String,
    /// An application-specific condition element (e.g. XEP-0191 `<blocked/>`).
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    pub fn new(condition: Condition, text: impl Into<String>) -> Self {
        StanzaError {
            error_type: condition.default_type(),
            condition,
            text: text.into(),
            app: None,
        }
    }

    pub fn with_type(mut self, t: ErrorType) -> Self {
        self.error_type = t;
        self
    }

    pub fn with_app(mut self, app: Element) -> Self {
        self.app = Some(Box::new(app));
        self
    }

    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(Condition::BadRequest, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(Condition::NotAllowed, text)
    }
    pub fn forbidden(text: impl Into<String>) -> Self {
        Self::new(Condition::Forbidden, text)
    }
    pub fn item_not_found(text: impl Into<String>) -> Self {
        Self::new(Condition::ItemNotFound, text)
    }
    pub fn service_unavailable(text: impl Into<String>) -> Self {
        Self::new(Condition::ServiceUnavailable, text)
    }
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(Condition::InternalServerError, text)
    }

    /// The `<error/>` child element.
    pub fn to_element(&self) -> Element {
        let mut e = el("error", ns::CLIENT).with_attr("type", self.error_type.as_str());
        e.append_child(el(self.condition.as_str(), ns::STANZA_ERRORS));
        if !self.text.is_empty() {
            e.append_child(
                el("text", ns::STANZA_ERRORS)
                    .with_attr("xml:lang", "en")
                    .with_text(&self.text),
            );
        }
        if let Some(app) = &self.app {
            e.append_child((**app).clone());
        }
        e
    }

    /// Turn the offending stanza into its error reply (RFC 6120 §8.3.1): addresses swapped,
    /// type `error`, the original payload kept, the `<error/>` child appended.
    pub fn bounce(&self, stanza: &Element) -> Element {
        let mut reply = Element::bare(stanza.name(), ns::CLIENT);
        for (k, v) in stanza.attr_pairs() {
            match k.as_str() {
                "to" => reply.put_attr("from", &v),
                "from" => reply.put_attr("to", &v),
                "type" => {}
                _ => reply.put_attr(&k, &v),
            }
        }
        reply.put_attr("type", "error");
        // Keep the payload for IQs only: a bounced message need not echo a large body back.
        if stanza.name() == "iq" {
            for child in stanza.children() {
                reply.append_child(child.clone());
            }
        }
        reply.append_child(self.to_element());
        reply
    }
}

impl From<rookery_storage::StoreError> for StanzaError {
    fn from(e: rookery_storage::StoreError) -> Self {
        tracing::error!(error = %e, "store failure while handling a stanza");
        StanzaError::internal("the server's database failed; try again later")
    }
}
