//! Eviction under `maxmemory` (Redis's evict.c): when a command arrives over the limit, keys are
//! removed one at a time, each the best victim of a small random sample (`maxmemory-samples`),
//! until memory is under the limit again.
//!
//! Like Redis's, the choice is approximate: the LRU clock has a resolution of one second, and
//! LFU counters decay by one per idle minute (`lfu-decay-time` 1). Samples come from random
//! shards, one shard locked at a time, and the victim's shard is locked again to remove it, so
//! eviction never holds two shard locks and runs before a command takes its own.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    /// A `maxmemory-policy` value (the setting accepts only Redis's names).
    pub fn parse(s: &str) -> Policy {
        match s {
            "allkeys-lru" => Policy::AllKeysLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }

    /// Only keys with a TTL are candidates.
    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
}

/// Redis's LFU decay: the counter loses one per idle minute.
fn lfu_now(freq: u8, idle_s: u32) -> u8 {
    freq.saturating_sub((idle_s / 60).min(255) as u8)
}

/// How good a victim a key is under `policy`: higher goes first.
fn score(policy: Policy, e: Option<&Entry>, expire_at: Option<i64>, clock: u32) -> u64 {
    let idle = |e: &Entry| clock.saturating_sub(e.lru()) as u64;
    match policy {
        Policy::AllKeysRandom | Policy::VolatileRandom | Policy::NoEviction => rand::random(),
        Policy::AllKeysLru | Policy::VolatileLru => e.map_or(0, idle),
        Policy::AllKeysLfu | Policy::VolatileLfu => e.map_or(0, |e| {
            let f = lfu_now(e.freq(), idle(e) as u32);
            // Least used first; among equals, the longest idle.
            ((255 - f as u64) << 32) | idle(e)
        }),
        // The nearest expiry first.
        Policy::VolatileTtl => expire_at.map_or(0, |at| u64::MAX - at.max(0) as u64),
    }
}

struct Candidate {
    score: u64,
    shard: usize,
    db: usize,
    key: Sds,
}

impl Store {
    /// Evicts one key chosen by `policy` among about `samples` sampled keys. Returns false
    /// when no key can be evicted (no keys, or none with a TTL under a volatile policy).
    pub fn evict_one(&self, policy: Policy, samples: usize, now_ms: i64) -> bool {
        if policy == Policy::NoEviction {
            return false;
        }
        let clock = self.lru_clock();
        let samples = samples.max(1);
        let mut best: Option<Candidate> = None;
        let mut sampled = 0;
        // Random shards first; a keyspace too sparse for them to find anything is walked in
        // order from a random shard, so a lone evictable key is still found.
        let start = rand::random_range(0..SHARDS);
        let order = (0..samples * 8)
            .map(|_| rand::random_range(0..SHARDS))
            .chain((0..SHARDS).map(|i| (start + i) % SHARDS));
        for i in order {
            if sampled >= samples {
                break;
            }
            let s = self.shards[i].lock();
            for (db, d) in s.dbs.iter().enumerate() {
                let c = if policy.volatile() {
                    d.expires.random().map(|x| {
                        let e = d.keys.get(&x.key);
                        (x.key.clone(), score(policy, e, Some(x.at_ms), clock))
                    })
                } else {
                    d.keys.random().map(|e| {
                        let at = e.has_expire().then(|| s.expire_of(db, &e.key)).flatten();
                        (e.key.clone(), score(policy, Some(e), at, clock))
                    })
                };
                let Some((key, score)) = c else { continue };
                sampled += 1;
                if best.as_ref().is_none_or(|b| score > b.score) {
                    best = Some(Candidate {
                        score,
                        shard: i,
                        db,
                        key,
                    });
                }
            }
        }
        let Some(victim) = best else {
            return false;
        };
        let mut s = self.shards[victim.shard].lock();
        // Gone meanwhile (deleted, or evicted by another client): progress all the same.
        if s.remove(victim.db, &victim.key).is_some() {
            s.stats.evicted_keys += 1;
            publish_removed(
                self,
                victim.db,
                &victim.key,
                now_ms,
                "evicted",
                class::EVICTED,
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(keys: usize, ttl_every: usize) -> Store {
        let store = Store::new(1, Arc::new(Events::default()));
        for i in 0..keys {
            let key = format!("k{i}");
            let mut ks = store.lock_keys(&[key.as_bytes()], 0);
            let e = Entry::new(
                Sds::from_vec(key.clone().into_bytes()),
                Value::Int(i as i64),
                0,
            );
            let at = (ttl_every > 0 && i % ttl_every == 0).then_some(1_000_000 + i as i64);
            ks.put_entry(0, e, at).unwrap();
        }
        store
    }

    #[test]
    fn evicts_until_nothing_is_left_to_evict() {
        let store = store_with(100, 10);
        // Volatile: only the ten keys with a TTL go, the nearest expiry first.
        let mut n = 0;
        while store.evict_one(Policy::VolatileTtl, 5, 0) {
            n += 1;
            assert!(n <= 10);
        }
        assert_eq!(n, 10);
        assert_eq!(store.db_sizes()[0], (90, 0));
        assert_eq!(store.stats().evicted_keys, 10);
        // allkeys: everything, down to a lone key found by the walk.
        while store.evict_one(Policy::AllKeysRandom, 5, 0) {}
        assert_eq!(store.db_sizes()[0], (0, 0));
        assert!(!store.evict_one(Policy::NoEviction, 5, 0));
    }

    #[test]
    fn lru_prefers_the_longest_idle_and_lfu_the_least_used() {
        let clock = 1000;
        let mut old = Entry::new(Sds::from_vec(b"a".to_vec()), Value::Int(1), 10);
        let new = Entry::new(Sds::from_vec(b"b".to_vec()), Value::Int(1), 990);
        assert!(
            score(Policy::AllKeysLru, Some(&old), None, clock)
                > score(Policy::AllKeysLru, Some(&new), None, clock)
        );
        old.set_freq(200);
        old.touch(clock);
        assert!(
            score(Policy::AllKeysLfu, Some(&old), None, clock)
                < score(Policy::AllKeysLfu, Some(&new), None, clock)
        );
        assert!(
            score(Policy::VolatileTtl, None, Some(5), clock)
                > score(Policy::VolatileTtl, None, Some(50), clock)
        );
        assert_eq!(lfu_now(10, 150), 8);
    }
}
