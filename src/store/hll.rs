//! HyperLogLog exactly as Redis 7.0 keeps it inside a string value, so PFCOUNT answers and the
//! bytes GET returns are the same as Redis's for the same input.
//!
//! Layout (Redis's `struct hllhdr`): `"HYLL"`, one encoding byte (0 dense, 1 sparse), three
//! unused bytes, then the cached cardinality as a little-endian u64 whose top bit marks it
//! stale. Dense: 16384 six-bit registers packed LSB first (12288 bytes). Sparse: a run-length
//! code of ZERO (`00xxxxxx`, 1..64 zero registers), XZERO (`01xxxxxx yyyyyyyy`, 1..16384) and VAL
//! (`1vvvvvxx`, value 1..32 repeated 1..4 times) opcodes, promoted to dense when a register needs
//! a value above 32 or the string would grow past `hll-sparse-max-bytes`. Elements are hashed
//! with MurmurHash64A (seed 0xadc83b19); the estimator is Ertl's (arXiv:1702.01284), as Redis's.

pub const HDR_SIZE: usize = 16;
const P: u32 = 14;
const Q: usize = 64 - P as usize;
pub const REGISTERS: usize = 1 << P;
const P_MASK: u64 = REGISTERS as u64 - 1;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
pub const DENSE_SIZE: usize = HDR_SIZE + (REGISTERS * BITS).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const ENCODING: usize = 4;
const CARD: usize = 8;

const XZERO_BIT: u8 = 0x40;
const VAL_BIT: u8 = 0x80;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const SEED: u64 = 0xadc8_3b19;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The value is not a well-formed HLL (Redis's `-INVALIDOBJ Corrupted HLL object detected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash2, 64-bit, reading 8-byte words little endian as Redis does on every platform.
pub fn murmurhash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element maps to and the length of its `000...1` pattern (Redis's `hllPatLen`).
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmurhash64a(ele, SEED);
    let index = (hash & P_MASK) as usize;
    // The bit above the Q used ones guarantees the run ends, so the count is at most Q + 1.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// An empty HLL: sparse, one XZERO covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut v = vec![0u8; HDR_SIZE];
    v[..4].copy_from_slice(b"HYLL");
    v[ENCODING] = SPARSE;
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        v.extend_from_slice(&xzero(n));
        left -= n;
    }
    v
}

/// Whether a string value passes Redis's `isHLLObjectOrReply` checks: magic, a known
/// encoding, and the exact size for dense.
pub fn is_hll(v: &[u8]) -> bool {
    v.len() >= HDR_SIZE
        && &v[..4] == b"HYLL"
        && v[ENCODING] <= SPARSE
        && (v[ENCODING] != DENSE || v.len() == DENSE_SIZE)
}

pub fn encoding(v: &[u8]) -> u8 {
    v[ENCODING]
}

/// The cached cardinality, when it is still valid.
pub fn cached_card(v: &[u8]) -> Option<u64> {
    if v[CARD + 7] & 0x80 != 0 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[CARD..CARD + 8]);
    Some(u64::from_le_bytes(b))
}

pub fn set_cached_card(v: &mut [u8], card: u64) {
    v[CARD..CARD + 8].copy_from_slice(&card.to_le_bytes());
}

pub fn invalidate_cache(v: &mut [u8]) {
    v[CARD + 7] |= 0x80;
}

// ---- dense registers (`regs` starts right after the header) ----

pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs[byte] as u16;
    // The last register ends inside the array; Redis reads the sds terminator there.
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u16) as u8
}

pub fn dense_set(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = val as u16;
    regs[byte] &= !((REGISTER_MAX as u16) << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        *b1 &= !((REGISTER_MAX as u16) >> (8 - fb)) as u8;
        *b1 |= (v >> (8 - fb)) as u8;
    }
}

/// Every dense register in order: four 6-bit registers per three bytes, unpacked without the
/// per-register shifts of [`dense_get`] (PFCOUNT and merges read all 16384).
fn dense_each(regs: &[u8], mut f: impl FnMut(usize, u8)) {
    for (k, c) in regs.chunks_exact(3).enumerate() {
        let i = k * 4;
        f(i, c[0] & 63);
        f(i + 1, ((c[0] >> 6) | (c[1] << 2)) & 63);
        f(i + 2, ((c[1] >> 4) | (c[2] << 4)) & 63);
        f(i + 3, c[2] >> 2);
    }
}

/// Sets register `i` to `count` when that is larger; true when it changed.
fn dense_set_max(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

// ---- sparse opcodes ----

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}

fn is_xzero(b: u8) -> bool {
    b & 0xc0 == XZERO_BIT
}

fn is_val(b: u8) -> bool {
    b & VAL_BIT != 0
}

fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}

fn xzero_len(b0: u8, b1: u8) -> usize {
    ((((b0 & 0x3f) as usize) << 8) | b1 as usize) + 1
}

fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}

fn val_len(b: u8) -> usize {
    (b & 0x3) as usize + 1
}

fn val(value: u8, len: usize) -> u8 {
    ((value - 1) << 2) | (len as u8 - 1) | VAL_BIT
}

fn zero(len: usize) -> u8 {
    (len - 1) as u8
}

fn xzero(len: usize) -> [u8; 2] {
    let l = len - 1;
    [(l >> 8) as u8 | XZERO_BIT, (l & 0xff) as u8]
}

/// One decoded opcode: (registers covered, value, bytes used).
fn opcode(v: &[u8], p: usize) -> (usize, u8, usize) {
    let b = v[p];
    if is_zero(b) {
        (zero_len(b), 0, 1)
    } else if is_xzero(b) {
        (xzero_len(b, v.get(p + 1).copied().unwrap_or(0)), 0, 2)
    } else {
        (val_len(b), val_value(b), 1)
    }
}

/// Visits the runs of a sparse HLL as (first register, run length, value), stopping before a
/// VAL run that would pass the last register as Redis does; returns the registers covered.
fn sparse_runs(v: &[u8], mut f: impl FnMut(usize, usize, u8)) -> usize {
    let mut idx = 0usize;
    let mut p = HDR_SIZE;
    while p < v.len() {
        let (run, value, oplen) = opcode(v, p);
        if value > 0 && idx + run > REGISTERS {
            break;
        }
        f(idx, run, value);
        idx += run;
        p += oplen;
    }
    idx
}

/// Converts a sparse HLL to dense in place (Redis's `hllSparseToDense`); the header, cached
/// cardinality included, is kept.
pub fn sparse_to_dense(v: &mut Vec<u8>) -> Result<(), Corrupt> {
    if v[ENCODING] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR_SIZE].copy_from_slice(&v[..HDR_SIZE]);
    dense[ENCODING] = DENSE;
    let regs = &mut dense[HDR_SIZE..];
    let covered = sparse_runs(v, |first, run, value| {
        if value > 0 {
            for i in first..first + run {
                dense_set(regs, i, value);
            }
        }
    });
    if covered != REGISTERS {
        return Err(Corrupt);
    }
    *v = dense;
    Ok(())
}

/// Sets register `index` to `count` when larger, editing the run-length code in place (Redis's
/// `hllSparseSet`, opcode for opcode, so the bytes match). Promotes to dense when needed.
pub fn sparse_set(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max: usize,
) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = v.len();
    let mut p = HDR_SIZE;
    let mut prev: Option<usize> = None;
    let mut first = 0usize;
    let mut span = 0usize;
    while p < end {
        let (run, _, oplen) = opcode(v, p);
        span = run;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let b = v[p];
    let (zero_op, xzero_op) = (is_zero(b), is_xzero(b));
    let runlen = span;

    // Step 2: the trivial cases, changed in place.
    let mut replaced = false;
    if !zero_op && !xzero_op {
        if val_value(b) >= count {
            return Ok(false);
        }
        if runlen == 1 {
            v[p] = val(count, 1);
            replaced = true;
        }
    }
    if zero_op && runlen == 1 {
        v[p] = val(count, 1);
        replaced = true;
    }

    if !replaced {
        // General case: split the opcode into up to three (worst: XZERO-VAL-XZERO).
        let last = first + span - 1;
        let mut seq: smallvec::SmallVec<[u8; 5]> = smallvec::SmallVec::new();
        let push_zeros = |seq: &mut smallvec::SmallVec<[u8; 5]>, len: usize| {
            if len > ZERO_MAX_LEN {
                seq.extend_from_slice(&xzero(len));
            } else {
                seq.push(zero(len));
            }
        };
        if zero_op || xzero_op {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        } else {
            let cur = val_value(b);
            if index != first {
                seq.push(val(cur, index - first));
            }
            seq.push(val(count, 1));
            if index != last {
                seq.push(val(cur, last - index));
            }
        }
        // Step 3: substitute the new sequence for the old opcode.
        let oldlen = if xzero_op { 2 } else { 1 };
        if seq.len() > oldlen && v.len() + seq.len() - oldlen > sparse_max {
            return promote(v, index, count);
        }
        let old_end = (p + oldlen).min(v.len());
        v.splice(p..old_end, seq);
    }

    // Step 4: merge adjacent VAL opcodes of the same value, scanning up to 5 opcodes from the
    // one before the change.
    let mut p = prev.unwrap_or(HDR_SIZE);
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let b = v[p];
        if is_xzero(b) {
            p += 2;
            continue;
        }
        if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < v.len() && is_val(v[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(v[p + 1]));
            let len = val_len(b) + val_len(v[p + 1]);
            if v1 == v2 && len <= VAL_MAX_LEN {
                v[p + 1] = val(v1, len);
                v.remove(p);
                continue;
            }
        }
        p += 1;
    }
    invalidate_cache(v);
    Ok(true)
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    sparse_to_dense(v)?;
    Ok(dense_set_max(&mut v[HDR_SIZE..], index, count))
}

/// Adds one element; true when a register changed (Redis's `hllAdd`).
pub fn add(v: &mut Vec<u8>, ele: &[u8], sparse_max: usize) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(ele);
    match v[ENCODING] {
        DENSE => Ok(dense_set_max(&mut v[HDR_SIZE..], index, count)),
        SPARSE => sparse_set(v, index, count, sparse_max),
        _ => Err(Corrupt),
    }
}

/// Merges an HLL into `max` (one byte per register, [`REGISTERS`] of them) by taking the
/// larger of each register (Redis's `hllMerge`).
pub fn merge_into(max: &mut [u8], v: &[u8]) -> Result<(), Corrupt> {
    if v[ENCODING] == DENSE {
        dense_each(&v[HDR_SIZE..], |i, r| max[i] = max[i].max(r));
        return Ok(());
    }
    let covered = sparse_runs(v, |first, run, value| {
        // Zero runs change nothing (and may run past the end in a corrupted value).
        if value > 0 {
            for m in &mut max[first..first + run] {
                *m = (*m).max(value);
            }
        }
    });
    if covered != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// Writes merged registers into an HLL (the end of PFMERGE): each non-zero register is set
/// through the HLL's own encoding, so a sparse one stays sparse while it can.
pub fn store_registers(v: &mut Vec<u8>, max: &[u8], sparse_max: usize) {
    for (i, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if v[ENCODING] == DENSE {
            dense_set_max(&mut v[HDR_SIZE..], i, m);
        } else {
            // As Redis, a corrupted destination is not reported here: it was validated.
            let _ = sparse_set(v, i, m, sparse_max);
        }
    }
    invalidate_cache(v);
}

/// The estimated cardinality of an HLL value (Redis's `hllCount`).
pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u32; 64];
    if v[ENCODING] == DENSE {
        dense_each(&v[HDR_SIZE..], |_, r| histo[r as usize] += 1);
    } else {
        let mut idx = 0usize;
        let mut p = HDR_SIZE;
        while p < v.len() {
            let (run, value, oplen) = opcode(v, p);
            idx += run;
            histo[value as usize] = histo[value as usize].wrapping_add(run as u32);
            p += oplen;
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// The estimated cardinality of merged registers.
pub fn count_registers(max: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in max.iter() {
        histo[r as usize] += 1;
    }
    estimate(&histo)
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Ertl's estimator over the register histogram, in Redis's order of floating-point operations.
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// PFDEBUG DECODE's text for a sparse HLL: `Z:16384`, `z:3`, `v:2,1` separated by spaces.
pub fn decode(v: &[u8]) -> String {
    let mut out = Vec::new();
    let mut p = HDR_SIZE;
    while p < v.len() {
        let b = v[p];
        let (run, value, oplen) = opcode(v, p);
        out.push(if is_zero(b) {
            format!("z:{run}")
        } else if is_xzero(b) {
            format!("Z:{run}")
        } else {
            format!("v:{value},{run}")
        });
        p += oplen;
    }
    out.join(" ")
}

/// Every register's value (PFDEBUG GETREG), for a dense HLL.
pub fn dense_registers(v: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let regs = &v[HDR_SIZE..];
    (0..REGISTERS).map(move |i| dense_get(regs, i))
}

/// PFSELFTEST: `rounds` of register access on random values (Redis: 1000), then dense and
/// sparse HLLs fed the same `elements` (Redis: 10,000,000) must agree and stay within the
/// expected error at every power of ten (Redis's own checks and messages).
pub fn self_test(sparse_max: usize, rounds: usize, elements: u64) -> Result<(), String> {
    let mut regs = vec![0u8; DENSE_SIZE - HDR_SIZE];
    let mut expect = vec![0u8; REGISTERS];
    for _ in 0..rounds {
        for (i, e) in expect.iter_mut().enumerate() {
            let r = rand::random::<u8>() & REGISTER_MAX;
            *e = r;
            dense_set(&mut regs, i, r);
        }
        for (i, &e) in expect.iter().enumerate() {
            let got = dense_get(&regs, i);
            if got != e {
                return Err(format!(
                    "TESTFAILED Register {i} should be {e} but is {got}"
                ));
            }
        }
    }
    let mut dense = new_sparse();
    sparse_to_dense(&mut dense).map_err(|_| "TESTFAILED dense conversion".to_string())?;
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let seed = rand::random::<u64>();
    let mut checkpoint: u64 = 1;
    for j in 1..=elements {
        let ele = (j ^ seed).to_le_bytes();
        let _ = add(&mut dense, &ele, sparse_max);
        add(&mut sparse, &ele, sparse_max).map_err(|_| "TESTFAILED corrupted".to_string())?;
        if j != checkpoint {
            continue;
        }
        if j < sparse_max as u64 / 2 && encoding(&sparse) != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let card = count(&dense).map_err(|_| "TESTFAILED corrupted".to_string())?;
        if count(&sparse).ok() != Some(card) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = checkpoint.abs_diff(card);
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hll_is_one_xzero() {
        let v = new_sparse();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[..5], b"HYLL\x01");
        assert_eq!(decode(&v), "Z:16384");
        assert_eq!(count(&v), Ok(0));
    }

    #[test]
    fn dense_registers_round_trip_without_touching_neighbours() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR_SIZE];
        let mut expect = vec![0u8; REGISTERS];
        let mut x: u64 = 88172645463325252;
        for (i, e) in expect.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = (x & 63) as u8;
            *e = r;
            dense_set(&mut regs, i, r);
        }
        for (i, &e) in expect.iter().enumerate() {
            assert_eq!(dense_get(&regs, i), e, "register {i}");
        }
        let mut seen = 0;
        dense_each(&regs, |i, r| {
            assert_eq!(r, expect[i], "register {i}");
            seen += 1;
        });
        assert_eq!(seen, REGISTERS);
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_sparse();
        let mut dense = new_sparse();
        sparse_to_dense(&mut dense).unwrap();
        for i in 0..2000u32 {
            let e = i.to_string();
            add(&mut sparse, e.as_bytes(), 1 << 20).unwrap();
            add(&mut dense, e.as_bytes(), 1 << 20).unwrap();
        }
        assert_eq!(encoding(&sparse), SPARSE);
        assert_eq!(count(&sparse), count(&dense));
        let mut converted = sparse.clone();
        sparse_to_dense(&mut converted).unwrap();
        assert_eq!(&converted[HDR_SIZE..], &dense[HDR_SIZE..]);
    }

    #[test]
    fn self_test_passes() {
        assert_eq!(self_test(3000, 5, 100_000), Ok(()));
    }

    #[test]
    fn murmurhash_matches_redis() {
        // redis-server: PFADD h a; PFDEBUG DECODE h -> "Z:12711 v:2,1 Z:3672".
        assert_eq!(pat_len(b"a"), (12711, 2));
        let mut v = new_sparse();
        assert_eq!(add(&mut v, b"a", 3000), Ok(true));
        assert_eq!(decode(&v), "Z:12711 v:2,1 Z:3672");
    }

    /// Whatever bytes follow a valid header, every operation answers without panicking.
    #[test]
    fn corrupted_values_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let mut v = new_sparse();
            v.truncate(HDR_SIZE);
            for i in 0..len {
                v.push((x >> (i % 8 * 8)) as u8 ^ i as u8);
            }
            if round % 3 == 0 {
                v.extend_from_slice(&xzero(16384 - (x % 300) as usize));
            }
            let mut max = vec![0u8; REGISTERS];
            let _ = merge_into(&mut max, &v);
            let _ = count(&v);
            let _ = decode(&v);
            let mut w = v.clone();
            let _ = add(&mut w, &round.to_string().into_bytes(), 3000);
            let mut w = v.clone();
            store_registers(&mut w, &max, 3000);
            let mut w = v.clone();
            let _ = sparse_to_dense(&mut w);
        }
    }

    #[test]
    fn promotes_at_the_size_limit() {
        let mut v = new_sparse();
        for i in 0..5000u32 {
            add(&mut v, i.to_string().as_bytes(), 3000).unwrap();
        }
        assert_eq!(encoding(&v), DENSE);
        assert_eq!(v.len(), DENSE_SIZE);
    }
}
