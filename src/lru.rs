//! A map with a hard cap on its keys that forgets the least recently used key to make room.
//! Every operation is a hash lookup plus a few index updates in a doubly linked list kept in
//! a `Vec` (no `unsafe`, no scan), so a spray of fresh keys costs O(1) each and the map never
//! grows past its cap. The rate limiters keep their buckets in it (src/limits.rs).

use std::collections::HashMap;
use std::hash::Hash;

/// "No slot": the end of the list.
const NIL: usize = usize::MAX;

struct Slot<K, V> {
    key: K,
    value: V,
    /// Towards the most recently used end.
    prev: usize,
    /// Towards the least recently used end.
    next: usize,
}

/// A least-recently-used map holding at most `cap` keys.
pub struct Lru<K, V> {
    index: HashMap<K, usize>,
    slots: Vec<Slot<K, V>>,
    /// The most recently used slot.
    head: usize,
    /// The least recently used slot: the next to be forgotten.
    tail: usize,
    cap: usize,
    /// Slots read or relinked so far: what the tests count to show an operation's cost does
    /// not grow with the number of keys.
    steps: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map that will hold at most `cap` (at least 1) keys.
    pub fn new(cap: usize) -> Lru<K, V> {
        Lru {
            index: HashMap::new(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            cap: cap.max(1),
            steps: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    /// Slots visited by all operations so far (see `steps`).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The value of `key`, now the most recently used, if it is there.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let at = *self.index.get(key)?;
        self.make_newest(at);
        Some(&mut self.slots[at].value)
    }

    /// The value of `key`, now the most recently used; made by `make` if absent, in the slot
    /// of the least recently used key when the map is full.
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        if let Some(&at) = self.index.get(key) {
            self.make_newest(at);
            return &mut self.slots[at].value;
        }
        let at = if self.slots.len() < self.cap {
            self.slots.push(Slot {
                key: key.clone(),
                value: make(),
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        } else {
            let at = self.tail;
            self.unlink(at);
            let slot = &mut self.slots[at];
            let old = std::mem::replace(&mut slot.key, key.clone());
            slot.value = make();
            self.index.remove(&old);
            at
        };
        self.index.insert(key.clone(), at);
        self.push_front(at);
        &mut self.slots[at].value
    }

    fn make_newest(&mut self, at: usize) {
        if self.head != at {
            self.unlink(at);
            self.push_front(at);
        }
    }

    fn unlink(&mut self, at: usize) {
        let (prev, next) = (self.slots[at].prev, self.slots[at].next);
        self.steps += 1;
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev].next = next;
            self.steps += 1;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next].prev = prev;
            self.steps += 1;
        }
    }

    fn push_front(&mut self, at: usize) {
        self.slots[at].prev = NIL;
        self.slots[at].next = self.head;
        self.steps += 1;
        if self.head == NIL {
            self.tail = at;
        } else {
            self.slots[self.head].prev = at;
            self.steps += 1;
        }
        self.head = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_key_goes_first() {
        let mut lru = Lru::new(3);
        for k in 1..=3 {
            *lru.get_or_insert_with(&k, || 0) += k;
        }
        // 1 is used again, so 2 is now the oldest.
        assert_eq!(lru.get_mut(&1).copied(), Some(1));
        lru.get_or_insert_with(&4, || 40);
        assert_eq!(lru.len(), 3);
        assert!(lru.get_mut(&2).is_none(), "2 was forgotten");
        assert_eq!(lru.get_mut(&1).copied(), Some(1));
        assert_eq!(lru.get_mut(&3).copied(), Some(3));
        assert_eq!(lru.get_mut(&4).copied(), Some(40));
        // A value made afresh after its key was forgotten.
        lru.get_or_insert_with(&5, || 50);
        assert!(
            lru.get_mut(&1).is_none(),
            "1 was the oldest after the reads above"
        );
        assert_eq!(lru.get_or_insert_with(&1, || 7), &7);
    }

    #[test]
    fn a_cap_of_one_still_works() {
        let mut lru = Lru::new(0);
        lru.get_or_insert_with(&"a", || 1);
        lru.get_or_insert_with(&"b", || 2);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.get_mut(&"b").copied(), Some(2));
        assert!(lru.get_mut(&"a").is_none());
    }
}
