//! The framing shared by the append-only log and the snapshot: checksummed records, and the
//! reader that tells a clean end, a truncated tail and corruption apart.
//!
//! A record is `len: u32 LE`, `crc32(len): u32 LE`, `payload: len bytes`, `crc32(payload): u32
//! LE`. The length carries its own checksum so a flipped bit in a length is reported as
//! corruption at that offset instead of passing for a record that runs past the end of the file
//! (which is what a crash in the middle of a write looks like, and the only case that is cut off
//! rather than refused).

use std::io::{self, Read};

/// Largest payload a record may carry (a bound on what a damaged length can make us allocate).
pub const MAX_RECORD: u32 = 1 << 30;

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Frames `payload` as one record at the end of `out`.
pub fn write_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    put_u32(out, crc32fast::hash(&len));
    out.extend_from_slice(payload);
    put_u32(out, crc32fast::hash(payload));
}

/// Frames a record whose payload is built in place by `f` (no copy of the payload).
pub fn write_record_with(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    f(out);
    let len = (out.len() - start - 8) as u32;
    let len_bytes = len.to_le_bytes();
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&crc32fast::hash(&len_bytes).to_le_bytes());
    let crc = crc32fast::hash(&out[start + 8..]);
    put_u32(out, crc);
}

/// How reading a record ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Record(Vec<u8>),
    /// No more bytes, at a record boundary.
    End,
    /// The file ends inside the record starting here (a crash mid-write).
    Truncated,
    /// The record starting here is damaged.
    Corrupt(&'static str),
}

/// Reads framed records, counting the offset of each.
pub struct Reader<R> {
    inner: R,
    pub offset: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R, offset: u64) -> Reader<R> {
        Reader { inner, offset }
    }

    /// Fills `buf`; Ok(false) when the input ended first (nothing or part read).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<(bool, usize)> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => return Ok((false, got)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((true, got))
    }

    /// The next record. On anything but `Record`, `offset` stays at the start of the bad record.
    pub fn next_record(&mut self) -> io::Result<Next> {
        let mut head = [0u8; 8];
        match self.fill(&mut head)? {
            (false, 0) => return Ok(Next::End),
            (false, _) => return Ok(Next::Truncated),
            (true, _) => {}
        }
        let len_bytes: [u8; 4] = [head[0], head[1], head[2], head[3]];
        let len_crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if crc32fast::hash(&len_bytes) != len_crc {
            return Ok(Next::Corrupt("record length checksum mismatch"));
        }
        let len = u32::from_le_bytes(len_bytes);
        if len > MAX_RECORD {
            return Ok(Next::Corrupt("record longer than the format allows"));
        }
        let mut payload = vec![0u8; len as usize + 4];
        if !self.fill(&mut payload)?.0 {
            return Ok(Next::Truncated);
        }
        let crc_at = len as usize;
        let crc = u32::from_le_bytes([
            payload[crc_at],
            payload[crc_at + 1],
            payload[crc_at + 2],
            payload[crc_at + 3],
        ]);
        payload.truncate(crc_at);
        if crc32fast::hash(&payload) != crc {
            return Ok(Next::Corrupt("record checksum mismatch"));
        }
        self.offset += 8 + len as u64 + 4;
        Ok(Next::Record(payload))
    }
}

/// A cursor over a record's payload; every read is bounds-checked (a payload that passed its
/// checksum can still have been written by a different version or a bug).
pub struct Cursor<'a> {
    buf: &'a [u8],
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let b = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(b)
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> (Vec<Vec<u8>>, Next, u64) {
        let mut r = Reader::new(bytes, 0);
        let mut out = Vec::new();
        loop {
            match r.next_record().unwrap() {
                Next::Record(p) => out.push(p),
                end => return (out, end, r.offset),
            }
        }
    }

    #[test]
    fn round_trip_truncation_and_corruption() {
        let mut f = Vec::new();
        write_record(&mut f, b"hello");
        write_record_with(&mut f, |o| o.extend_from_slice(b"world!"));
        let (recs, end, off) = read_all(&f);
        assert_eq!(recs, vec![b"hello".to_vec(), b"world!".to_vec()]);
        assert_eq!((end, off), (Next::End, f.len() as u64));
        // Cut anywhere inside the second record: the first survives, the rest is truncated.
        let first = 8 + 5 + 4;
        for cut in first + 1..f.len() {
            let (recs, end, off) = read_all(&f[..cut]);
            assert_eq!(recs.len(), 1);
            assert_eq!((end, off), (Next::Truncated, first as u64));
        }
        // Any flipped bit is corruption or (in the last record's length) never a wrong record.
        for byte in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[byte] ^= 1 << bit;
                let (recs, end, _) = read_all(&g);
                assert!(recs.len() < 2, "flip at {byte}:{bit} went unnoticed");
                assert!(matches!(end, Next::Corrupt(_)), "{byte}:{bit}: {end:?}");
            }
        }
    }
}
