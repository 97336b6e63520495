//! `Sds`: the byte string used for keys, string values and collection members. Up to
//! [`INLINE_CAP`] bytes live inside the value itself (no allocation, as Redis's embstr); longer
//! strings take one heap allocation sized exactly.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

pub const INLINE_CAP: usize = 22;

#[derive(Clone)]
pub enum Sds {
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Heap(Box<[u8]>),
}

impl Sds {
    pub fn new(bytes: &[u8]) -> Sds {
        if bytes.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..bytes.len()].copy_from_slice(bytes);
            Sds::Inline {
                len: bytes.len() as u8,
                buf,
            }
        } else {
            Sds::Heap(bytes.into())
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Sds {
        if v.len() <= INLINE_CAP {
            Sds::new(&v)
        } else {
            Sds::Heap(v.into_boxed_slice())
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Sds::Inline { len, buf } => &buf[..*len as usize],
            Sds::Heap(b) => b,
        }
    }

    /// The bytes as an owned vector: free for heap strings, so a command can edit a string value
    /// in place (SETBIT, PFADD) and store it back with [`Sds::from_vec`].
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Sds::Inline { len, buf } => buf[..len as usize].to_vec(),
            Sds::Heap(b) => b.into_vec(),
        }
    }

    /// Bytes allocated on the heap for this string (0 when inline).
    pub fn heap_size(&self) -> usize {
        match self {
            Sds::Inline { .. } => 0,
            Sds::Heap(b) => b.len(),
        }
    }
}

impl Default for Sds {
    fn default() -> Self {
        Sds::new(b"")
    }
}

impl Deref for Sds {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Borrow<[u8]> for Sds {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Sds {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Sds {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for Sds {}

impl PartialOrd for Sds {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sds {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Sds {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl fmt::Debug for Sds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl From<&[u8]> for Sds {
    fn from(b: &[u8]) -> Self {
        Sds::new(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap() {
        assert_eq!(std::mem::size_of::<Sds>(), 24);
        let s = Sds::new(b"hello");
        assert!(matches!(s, Sds::Inline { .. }));
        assert_eq!(&*s, b"hello");
        let long = vec![7u8; 100];
        let h = Sds::new(&long);
        assert_eq!(h.heap_size(), 100);
        assert_eq!(&*h, &long[..]);
        assert_eq!(Sds::from_vec(b"ab".to_vec()), Sds::new(b"ab"));
    }
}
