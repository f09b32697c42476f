//! Server dialback (XEP-0220) with keys as XEP-0185 recommends.
//!
//! The initiating server sends `<db:result from='us' to='them'>KEY</db:result>`; the
//! receiving server asks the initiating domain's authoritative server (found by DNS or
//! the static map, so an impostor cannot answer) with
//! `<db:verify from='them' to='us' id='STREAM-ID'>KEY</db:verify>` on a connection of its
//! own, and gets `type='valid'` only if the key is the one we made for that pair and
//! stream. The key is HMAC-SHA256 under the SHA-256 of a secret that lives only in this
//! process, so nobody else can compute it and we need to remember nothing.

use super::conn::S2sConn;
use super::outgoing::{Failure, open_stream};
use crate::server::Server;
use crate::xml::ElementExt;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The dialback key for a stream whose id `stream_id` the receiving server gave.
pub(super) fn key(secret: &[u8], receiving: &str, originating: &str, stream_id: &str) -> String {
    let hashed = hex(&Sha256::digest(secret));
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(hashed.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(receiving.as_bytes());
    mac.update(b" ");
    mac.update(originating.as_bytes());
    mac.update(b" ");
    mac.update(stream_id.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Whether `given` is the key for this pair and stream (constant time).
pub(super) fn check(
    secret: &[u8],
    receiving: &str,
    originating: &str,
    stream_id: &str,
    given: &str,
) -> bool {
    let expected = key(secret, receiving, originating, stream_id);
    bool::from(expected.as_bytes().ct_eq(given.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<db:result/>` or `<db:verify/>`, written with the prefix our header declares.
pub(super) fn element(
    name: &str,
    from: &str,
    to: &str,
    id: Option<&str>,
    ty: Option<&str>,
    key: Option<&str>,
) -> String {
    use crate::xml::escape;
    let mut out = format!("<db:{name} from='{}' to='{}'", escape(from), escape(to));
    if let Some(id) = id {
        out.push_str(&format!(" id='{}'", escape(id)));
    }
    if let Some(ty) = ty {
        out.push_str(&format!(" type='{ty}'"));
    }
    match key {
        Some(k) => out.push_str(&format!(">{}</db:{name}>", escape(k))),
        None => out.push_str("/>"),
    }
    out
}

/// As the receiving server `local`, ask `originating`'s authoritative server whether `key`
/// is its key for the stream `stream_id` we gave it. `Ok(valid)` when it answered.
pub(super) async fn verify(
    server: &Server,
    local: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> Result<bool, Failure> {
    let (mut conn, _) = open_stream(server, local, originating).await?;
    let r = ask(&mut conn, local, originating, stream_id, key).await;
    conn.close().await;
    r
}

async fn ask(
    conn: &mut S2sConn,
    local: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> Result<bool, Failure> {
    let request = element(
        "verify",
        local,
        originating,
        Some(stream_id),
        None,
        Some(key),
    );
    conn.send_raw(request.as_bytes())
        .await
        .map_err(|e| Failure::not_found(format!("connection to {originating} failed: {e}")))?;
    loop {
        let e = conn.next_element().await.map_err(|end| {
            Failure::not_found(format!(
                "{originating} closed the stream instead of answering dialback: {}",
                super::describe(&end)
            ))
        })?;
        if e.is("verify", super::NS_DIALBACK) && e.get_attr("id") == Some(stream_id) {
            return Ok(e.get_attr("type") == Some("valid"));
        }
        if e.is("error", crate::ns::STREAMS) {
            return Err(Failure::not_found(format!(
                "{originating} sent a stream error: {}",
                super::stream_error_text(&e)
            )));
        }
        // Anything else on a verification stream is ignored.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_input_and_check_in_constant_time() {
        let k = key(b"secret", "b.test", "a.test", "id1");
        assert_eq!(k.len(), 64);
        assert!(check(b"secret", "b.test", "a.test", "id1", &k));
        assert!(!check(b"secret", "b.test", "a.test", "id2", &k));
        assert!(!check(b"secret", "a.test", "b.test", "id1", &k));
        assert!(!check(b"other", "b.test", "a.test", "id1", &k));
        assert!(!check(b"secret", "b.test", "a.test", "id1", ""));
    }

    #[test]
    fn dialback_elements_use_the_db_prefix_and_escape() {
        assert_eq!(
            element("result", "a.test", "b.test", None, None, Some("k")),
            "<db:result from='a.test' to='b.test'>k</db:result>"
        );
        assert_eq!(
            element("verify", "b'", "a", Some("i"), Some("valid"), None),
            "<db:verify from='b&apos;' to='a' id='i' type='valid'/>"
        );
    }
}
