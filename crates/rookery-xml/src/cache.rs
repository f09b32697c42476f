//! Small caches that save allocations on every stanza.
//!
//! Streams repeat the same few namespaces and element names over and over (`jabber:client`,
//! `message`, `body`, the chat-state and receipt namespaces...). minidom gives each element
//! its own name `String` and its own `Arc` for its namespace name; cloning an existing
//! element instead shares the `Arc`. Both caches have a fixed number of slots, each name
//! having two it may live in, so a lookup is a look at a few bytes and a comparison or two,
//! a miss costs little more than going without the cache, and a peer sending endless new
//! names cannot make them grow (it only evicts names other streams would have found).
//!
//! The caches belong to the thread, not to the stream: the same names serve every stream
//! parsed on it, and an idle connection holds none of them (per stream, they were about a
//! third of an idle connection's memory).

use std::cell::RefCell;

use minidom::rxml::Namespace;

use crate::Element;

/// Slots in each cache (a power of two). A name may live in the slot its hash picks or in
/// the neighbouring one (`slot ^ 1`), so that two names in frequent use that happen to hash
/// alike do not keep evicting each other.
const SLOTS: usize = 64;

/// Whether two strings are equal, without comparing the contents of empty ones: an empty
/// `String` or `Namespace::NONE` points at address 1, and some `memcmp` implementations
/// (glibc's AVX-512 ones) take microseconds to compare zero bytes there.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// A cheap hash of a name: its length and three of its bytes. Names that collide merely
/// share a slot.
fn mix(s: &str) -> u64 {
    let b = s.as_bytes();
    match b {
        [] => 0,
        [first, .., last] => {
            b.len() as u64
                | u64::from(*first) << 16
                | u64::from(b[b.len() / 2]) << 24
                | u64::from(*last) << 32
        }
        [only] => 1 | u64::from(*only) << 16,
    }
}

/// The slot for a hash: its top bits after a multiplication that spreads every bit of it
/// over them (Fibonacci hashing).
fn slot(hash: u64) -> usize {
    (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize
}

/// Look an entry up in the slot pair of `hash`: `found` tells whether an entry is the one
/// wanted. On a miss, `make` makes a new entry, which goes into the first slot of the pair;
/// the entry there, if any, moves to the second (and the one there is dropped).
fn lookup<T: Clone>(
    slots: &mut Vec<Option<T>>,
    hash: u64,
    found: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> T {
    if slots.is_empty() {
        slots.resize(SLOTS, None);
    }
    let first = slot(hash);
    for i in [first, first ^ 1] {
        if let Some(entry) = &slots[i]
            && found(entry)
        {
            return entry.clone();
        }
    }
    let entry = make();
    if let Some(evicted) = slots[first].replace(entry.clone()) {
        slots[first ^ 1] = Some(evicted);
    }
    entry
}

thread_local! {
    static NAMESPACES: RefCell<Namespaces> = const { RefCell::new(Namespaces::new()) };
    static ELEMENTS: RefCell<Elements> = const { RefCell::new(Elements::new()) };
}

/// The namespace named `uri`, from this thread's cache.
pub(crate) fn namespace(uri: &str) -> Namespace<'static> {
    NAMESPACES.with_borrow_mut(|c| c.get(uri))
}

/// An element without attributes or children, as `Element::bare(name, ns)`, from this
/// thread's cache.
pub(crate) fn element(name: &str, ns: &Namespace<'static>) -> Element {
    ELEMENTS.with_borrow_mut(|c| c.get(name, ns))
}

/// Namespace names declared by `xmlns` attributes.
#[derive(Debug)]
pub(crate) struct Namespaces {
    slots: Vec<Option<Namespace<'static>>>,
}

impl Namespaces {
    pub(crate) const fn new() -> Self {
        Namespaces { slots: Vec::new() }
    }

    /// The namespace named `uri`, sharing its storage with earlier ones of the same name.
    pub(crate) fn get(&mut self, uri: &str) -> Namespace<'static> {
        if let Some(ns) = Namespace::try_share_static(uri) {
            return ns;
        }
        lookup(
            &mut self.slots,
            mix(uri),
            |ns| same(ns, uri),
            || Namespace::from(uri.to_owned()),
        )
    }
}

/// Empty elements to clone, by name and namespace.
#[derive(Debug)]
pub(crate) struct Elements {
    /// Boxed, so that empty slots take little room. Same replacement as [`lookup`].
    slots: Vec<Option<Box<(Namespace<'static>, Element)>>>,
}

impl Elements {
    pub(crate) const fn new() -> Self {
        Elements { slots: Vec::new() }
    }

    /// An element without attributes or children, as `Element::bare(name, ns)`.
    pub(crate) fn get(&mut self, name: &str, ns: &Namespace<'static>) -> Element {
        let hash = mix(name) ^ mix(ns).rotate_left(40);
        if self.slots.is_empty() {
            self.slots.resize(SLOTS, None);
        }
        let first = slot(hash);
        for i in [first, first ^ 1] {
            if let Some(entry) = &self.slots[i]
                && entry.1.name() == name
                && same(&entry.0, ns)
            {
                return entry.1.clone();
            }
        }
        let el = Element::bare(name, ns.as_str());
        if let Some(evicted) = self.slots[first].replace(Box::new((ns.clone(), el.clone()))) {
            self.slots[first ^ 1] = Some(evicted);
        }
        el
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_elements_equal_fresh_ones() {
        let mut elements = Elements::new();
        let ns = Namespace::from("jabber:client");
        for _ in 0..3 {
            assert_eq!(
                elements.get("message", &ns),
                Element::bare("message", "jabber:client")
            );
            assert_eq!(elements.get("x", &Namespace::NONE), Element::bare("x", ""));
        }
        // Every name gets its own element, colliding slots or not.
        for i in 0..200 {
            let name = format!("e{i}");
            assert_eq!(elements.get(&name, &ns).name(), name);
        }
    }

    #[test]
    fn cached_namespaces_are_the_same_names() {
        let mut namespaces = Namespaces::new();
        for i in 0..200 {
            let uri = format!("urn:x:{}", i % 50);
            assert_eq!(namespaces.get(&uri), uri.as_str());
        }
        assert_eq!(namespaces.get(""), Namespace::NONE);
    }
}
