//! Eviction under `maxmemory` (Redis's evict.c): when a command arrives over the limit, keys are
//! removed one at a time, each the best victim of a small random sample (`maxmemory-samples`),
//! until memory is under the limit again.
//!
//! Like Redis's, the choice is approximate: the LRU clock has a resolution of one second, and
//! LFU counters (counted on access: [`Entry::access_lfu`]) decay by one per `lfu-decay-time`
//! idle minutes. Samples come from random
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

/// How good a victim a key is under `policy` (`decay`: `lfu-decay-time`): higher goes first.
fn score(policy: Policy, e: Option<&Entry>, expire_at: Option<i64>, clock: u32, decay: u32) -> u64 {
    let idle = |e: &Entry| clock.saturating_sub(e.lru()) as u64;
    match policy {
        Policy::AllKeysRandom | Policy::VolatileRandom | Policy::NoEviction => rand::random(),
        Policy::AllKeysLru | Policy::VolatileLru => e.map_or(0, idle),
        Policy::AllKeysLfu | Policy::VolatileLfu => e.map_or(0, |e| {
            let f = e.freq_at(clock, decay);
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
        let decay = self.lfu.decay_minutes();
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
                        (x.key.clone(), score(policy, e, Some(x.at_ms), clock, decay))
                    })
                } else {
                    d.keys.random().map(|e| {
                        let at = e.has_expire().then(|| s.expire_of(db, &e.key)).flatten();
                        (e.key.clone(), score(policy, Some(e), at, clock, decay))
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
        if let Some(e) = s.remove(victim.db, &victim.key) {
            s.stats.evicted_keys += 1;
            super::stream_gone(self, victim.db, &victim.key, &e.value);
            publish_removed(
                self,
                victim.db,
                &victim.key,
                now_ms,
                "evicted",
                class::EVICTED,
            );
            self.lazyfree.dispose(e, &self.lazyfree.lazy_eviction);
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
            score(Policy::AllKeysLru, Some(&old), None, clock, 1)
                > score(Policy::AllKeysLru, Some(&new), None, clock, 1)
        );
        old.set_freq(200);
        old.touch(clock);
        assert!(
            score(Policy::AllKeysLfu, Some(&old), None, clock, 1)
                < score(Policy::AllKeysLfu, Some(&new), None, clock, 1)
        );
        assert!(
            score(Policy::VolatileTtl, None, Some(5), clock, 1)
                > score(Policy::VolatileTtl, None, Some(50), clock, 1)
        );
    }

    #[test]
    fn lfu_counts_accesses_and_decays_by_whole_minutes() {
        let lfu = LfuTuning::default();
        // Log factor 0: every access counts (Redis's probability is 1 / (base * factor + 1)).
        lfu.log_factor.store(0, Ordering::Relaxed);
        let mut e = Entry::new(Sds::from_vec(b"k".to_vec()), Value::Int(1), 100);
        assert_eq!(e.freq_at(100, 1), 5);
        for _ in 0..10 {
            e.access_lfu(110, &lfu);
        }
        assert_eq!(e.freq_at(110, 1), 15);
        // Minutes are counted on the clock's minute boundaries, as Redis's: 110 s and 125 s
        // are one minute apart, 125 s and 175 s none.
        assert_eq!(e.freq_at(125, 1), 14);
        assert_eq!(e.freq_at(110 + 150, 1), 12);
        assert_eq!(e.freq_at(110 + 150, 2), 14);
        assert_eq!(e.freq_at(10_000_000, 1), 0);
        assert_eq!(e.freq_at(10_000_000, 0), 15, "lfu-decay-time 0: no decay");
        // An access after three idle minutes decays first, then counts.
        e.access_lfu(290, &lfu);
        assert_eq!(e.freq_at(290, 1), 13);
        // The default log factor makes a high counter grow rarely.
        lfu.log_factor.store(10, Ordering::Relaxed);
        let mut hot = Entry::new(Sds::from_vec(b"h".to_vec()), Value::Int(1), 0);
        for _ in 0..1000 {
            hot.access_lfu(0, &lfu);
        }
        let f = hot.freq_at(0, 1);
        assert!((10..40).contains(&f), "1000 accesses gave a counter of {f}");
    }
}
