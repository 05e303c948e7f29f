//! Interning of path attribute sets.
//!
//! Thousands of routes from one peer usually share a handful of attribute sets (an NVA
//! advertises every branch prefix with the same next hop, AS path and communities). Each set is
//! stored once, behind an `Arc`, and routes hold the `Arc`. Identity (`Arc::ptr_eq`) then stands
//! for equality, which the export path uses to group prefixes into packed UPDATEs.

use std::collections::HashSet;
use std::sync::Arc;

use bgp::wire::PathAttributes;

/// The set of live attribute sets.
#[derive(Default, Debug)]
pub struct Interner {
    sets: HashSet<Arc<PathAttributes>>,
    /// Size after the last sweep: the next one runs when the set has doubled.
    swept_at: usize,
}

impl Interner {
    /// The shared copy of `attrs`, stored if new.
    pub fn intern(&mut self, attrs: PathAttributes) -> Arc<PathAttributes> {
        if let Some(a) = self.sets.get(&attrs) {
            return a.clone();
        }
        let a = Arc::new(attrs);
        self.sets.insert(a.clone());
        a
    }

    /// Forgets `a` when the caller held the last reference outside the interner. Call with the
    /// reference that is about to be dropped.
    pub fn release(&mut self, a: Arc<PathAttributes>) {
        // One reference here (`a`) plus the interner's own: nobody else uses the set.
        if Arc::strong_count(&a) == 2 {
            self.sets.remove(&*a);
        }
    }

    /// Drops every set nobody else holds, when the interner has doubled since the last sweep
    /// (amortized O(1) per insertion). [`Interner::release`] catches most dead sets at once;
    /// this catches those that were briefly shared when they were released.
    pub fn maybe_sweep(&mut self) {
        if self.sets.len() > 2 * self.swept_at + 64 {
            self.sets.retain(|a| Arc::strong_count(a) > 1);
            self.swept_at = self.sets.len();
        }
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::wire::Origin;

    #[test]
    fn shares_and_releases() {
        let mut i = Interner::default();
        let a = PathAttributes {
            origin: Some(Origin::Igp),
            ..Default::default()
        };
        let x = i.intern(a.clone());
        let y = i.intern(a.clone());
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(i.len(), 1);
        i.release(x);
        assert_eq!(i.len(), 1, "y still holds it");
        i.release(y);
        assert!(i.is_empty());
    }
}
