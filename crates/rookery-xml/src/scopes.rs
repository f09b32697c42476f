//! Namespace declarations in force at the current point of a stream (Namespaces in XML
//! 1.0 §5 and §6).
//!
//! The default namespace is kept on its own, so that the lookup every unprefixed element
//! needs costs nothing. Prefixes are kept in a map from prefix to the stack of namespaces
//! bound to it, so that lookups stay cheap however many declarations a hostile peer piles
//! up in the open elements.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::mem;

use minidom::rxml::{Namespace, NcName};

/// What one open element changed, to be undone when it closes.
#[derive(Debug)]
struct Frame {
    /// The default namespace outside this element, if the element declared its own.
    outer_default: Option<Namespace<'static>>,
    /// Where this element's prefix declarations begin in [`Scopes::declared`].
    declared_from: usize,
}

/// A prefix or default namespace was declared twice on one element.
#[derive(Debug)]
pub(crate) struct Redeclared;

#[derive(Debug)]
pub(crate) struct Scopes {
    default: Namespace<'static>,
    prefixes: HashMap<NcName, Vec<Namespace<'static>>>,
    /// Prefixes declared by the open elements, outermost first.
    declared: Vec<NcName>,
    frames: Vec<Frame>,
}

impl Scopes {
    pub(crate) fn new() -> Self {
        Scopes {
            default: Namespace::NONE,
            prefixes: HashMap::new(),
            declared: Vec::new(),
            frames: Vec::new(),
        }
    }

    /// An element's start tag begins; its declarations follow.
    pub(crate) fn open(&mut self) {
        self.frames.push(Frame {
            outer_default: None,
            declared_from: self.declared.len(),
        });
    }

    /// `xmlns='uri'` on the element being opened (`uri` may be empty: no default).
    pub(crate) fn declare_default(&mut self, uri: Namespace<'static>) -> Result<(), Redeclared> {
        let frame = self
            .frames
            .last_mut()
            .expect("declaration outside a start tag");
        if frame.outer_default.is_some() {
            return Err(Redeclared);
        }
        frame.outer_default = Some(mem::replace(&mut self.default, uri));
        Ok(())
    }

    /// `xmlns:prefix='uri'` on the element being opened. The caller has already refused
    /// empty URIs, `xmlns:xmlns` and misuse of the XML namespace.
    pub(crate) fn declare_prefix(
        &mut self,
        prefix: NcName,
        uri: Namespace<'static>,
    ) -> Result<(), Redeclared> {
        let from = self
            .frames
            .last()
            .expect("declaration outside a start tag")
            .declared_from;
        if self.declared[from..].contains(&prefix) {
            return Err(Redeclared);
        }
        self.prefixes.entry(prefix.clone()).or_default().push(uri);
        self.declared.push(prefix);
        Ok(())
    }

    /// Whether the innermost open element declared a default namespace.
    pub(crate) fn declared_default_here(&self) -> bool {
        self.frames
            .last()
            .is_some_and(|frame| frame.outer_default.is_some())
    }

    /// The default namespace in force.
    pub(crate) fn default_ns(&self) -> &Namespace<'static> {
        &self.default
    }

    /// The namespace bound to `prefix`, if any. `xml` is always bound.
    pub(crate) fn resolve(&self, prefix: &str) -> Option<&Namespace<'static>> {
        if prefix == "xml" {
            return Some(Namespace::xml());
        }
        self.prefixes.get(prefix).and_then(|stack| stack.last())
    }

    /// The innermost open element ends: forget its declarations.
    pub(crate) fn close(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        if let Some(outer) = frame.outer_default {
            self.default = outer;
        }
        for prefix in self.declared.drain(frame.declared_from..) {
            if let Entry::Occupied(mut stack) = self.prefixes.entry(prefix) {
                stack.get_mut().pop();
                if stack.get().is_empty() {
                    stack.remove();
                }
            }
        }
    }
}
