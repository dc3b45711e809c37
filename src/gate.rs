//! Per-key turns in memory: the writers of one chat in this process wait here for their turn,
//! holding no pooled connection, instead of each holding one while PostgreSQL queues them
//! behind the chat's row lock (32 queued writers of one chat used to take every connection
//! of the pool, and every other request waited for one).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

/// A key's turn did not come within the wait: others held or awaited it all that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnTimedOut;

/// One turn at a time per key. A key is remembered only while someone holds or awaits its
/// turn, so the map holds at most as many keys as there are requests in flight.
pub struct Gates<K> {
    turns: Mutex<HashMap<K, Arc<TurnLock<()>>>>,
}

/// A key's turn, held until dropped.
pub struct Turn<'a, K: Hash + Eq + Clone> {
    gates: &'a Gates<K>,
    key: K,
    /// Dropped after `Turn::drop` ran: while it runs, this guard still counts as a holder.
    _guard: OwnedMutexGuard<()>,
}

impl<K: Hash + Eq + Clone> Default for Gates<K> {
    fn default() -> Self {
        Gates {
            turns: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> Gates<K> {
    /// Waits for `key`'s turn, at most `wait` (the edge answers `server_busy` when it does
    /// not come in time). Turns are handed out first come, first served.
    pub async fn turn(&self, key: K, wait: Duration) -> Result<Turn<'_, K>, TurnTimedOut> {
        let lock = self
            .turns
            .lock()
            .expect("gate map lock poisoned")
            .entry(key.clone())
            .or_default()
            .clone();
        // The clone above is what keeps the key remembered while this waits; on a timeout it
        // is dropped here, and the holder of the turn forgets the key if nobody else waits.
        let guard = tokio::time::timeout(wait, lock.lock_owned())
            .await
            .map_err(|_| TurnTimedOut)?;
        Ok(Turn {
            gates: self,
            key,
            _guard: guard,
        })
    }

    #[cfg(test)]
    /// Keys remembered now (for tests).
    pub fn len(&self) -> usize {
        self.turns.lock().expect("gate map lock poisoned").len()
    }
}

impl<K: Hash + Eq + Clone> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        let mut turns = self.gates.turns.lock().expect("gate map lock poisoned");
        // Two holders left, the map and this turn's guard: nobody waits, so forget the key.
        // A newcomer clones the entry under this same map lock, so none can slip in between.
        if turns
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 2)
        {
            turns.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_one_at_a_time_and_forgotten_when_nobody_waits() {
        let gates: Gates<i64> = Gates::default();
        let first = gates.turn(1, Duration::from_secs(1)).await.unwrap();
        // Another key is independent.
        let other = gates.turn(2, Duration::from_secs(1)).await.unwrap();
        // The same key waits, and gives up after its bound.
        assert!(matches!(
            gates.turn(1, Duration::from_millis(20)).await,
            Err(TurnTimedOut)
        ));
        assert_eq!(gates.len(), 2);
        drop(first);
        drop(other);
        assert_eq!(gates.len(), 0, "no holder and no waiter: no key kept");
        let again = gates.turn(1, Duration::from_millis(20)).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_keeps_the_key_and_gets_the_turn_next() {
        let gates: Arc<Gates<i64>> = Arc::new(Gates::default());
        let first = gates.turn(7, Duration::from_secs(1)).await.unwrap();
        let waiter = {
            let gates = gates.clone();
            tokio::spawn(async move {
                let turn = gates.turn(7, Duration::from_secs(5)).await;
                turn.is_ok()
            })
        };
        // Let the waiter queue up, then hand over.
        while Arc::strong_count(&gates.turns.lock().unwrap()[&7]) < 3 {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(gates.len(), 1, "the waiter keeps the key");
        assert!(waiter.await.unwrap());
        assert_eq!(gates.len(), 0);
    }
}
