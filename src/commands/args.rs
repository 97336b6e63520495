//! Argument parsing shared by every command: integers, floats, options and the cursor over the
//! argument list. Error replies match Redis's `getLongLongFromObjectOrReply` and friends.

use bytes::Bytes;

use super::error::CmdError;
use crate::store::value::parse_i64_strict;

pub fn eq_ic(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// An integer argument (`ERR value is not an integer or out of range` otherwise).
pub fn int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64_strict(arg).ok_or(CmdError::NotInteger)
}

/// An integer argument with a custom error when it is not one.
pub fn int_or(arg: &[u8], err: CmdError) -> Result<i64, CmdError> {
    parse_i64_strict(arg).ok_or(err)
}

/// A float argument as Redis 7.0 reads it with `strtod`/`strtold`: no spaces, no trailing junk,
/// not NaN; "inf" and "infinity" (any case, signed) allowed; hexadecimal floats (`0x1p4`)
/// allowed; a literal too large or too small for the type (`1e999`, `1e-999`) refused.
pub fn float(arg: &[u8]) -> Result<f64, CmdError> {
    parse_float(arg).ok_or(CmdError::NotFloat)
}

pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        // Rust's grammar is strtod's for decimals, except that it also takes "nan"/"inf"
        // spellings (handled above) and never reports range errors, which strtod does.
        if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let v: f64 = body.parse().ok()?;
        let has_nonzero_digit = body
            .split(['e', 'E'])
            .next()
            .is_some_and(|m| m.bytes().any(|c| (b'1'..=b'9').contains(&c)));
        if v.is_infinite() || (v == 0.0 && has_nonzero_digit) {
            return None; // strtod: ERANGE
        }
        v
    };
    Some(if neg { -v } else { v })
}

/// The part after `0x` of a C hexadecimal float: hex digits, an optional fraction, an optional
/// binary exponent (`p-3`).
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let e: i32 = e.parse().unwrap_or(if e.starts_with('-') {
            -100_000
        } else {
            100_000
        });
        v *= 2f64.powi(e.clamp(-100_000, 100_000));
    }
    if v.is_infinite() {
        return None;
    }
    Some(v)
}

/// An integer within `min..=max`, with Redis's `getRangeLongFromObjectOrReply` errors.
pub fn int_in_range(arg: &[u8], min: i64, max: i64) -> Result<i64, CmdError> {
    let v = int(arg)?;
    if v < min || v > max {
        return Err(CmdError::err(format!(
            "value is out of range, value must between {min} and {max}"
        )));
    }
    Ok(v)
}

/// A SCAN-family cursor, read as Redis's `parseScanCursorOrReply` (`strtoul`): an optional sign
/// (`-1` wraps to the largest cursor), decimal digits, nothing else; the empty string is 0.
pub fn scan_cursor(arg: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::err("invalid cursor");
    if arg.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let v = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(invalid)?;
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// MATCH and COUNT of HSCAN/SSCAN/ZSCAN (`pattern` is None for no pattern or `*`).
pub struct ScanOpts<'a> {
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
}

pub fn scan_opts(args: &[Bytes], start: usize) -> Result<ScanOpts<'_>, CmdError> {
    let mut o = ScanOpts {
        pattern: None,
        count: 10,
    };
    let mut it = ArgIter::new(args, start);
    while let Some(a) = it.next_arg() {
        if eq_ic(a, "COUNT") && it.remaining() > 0 {
            let c = int(it.value()?)?;
            if c < 1 {
                return Err(CmdError::Syntax);
            }
            o.count = c as usize;
        } else if eq_ic(a, "MATCH") && it.remaining() > 0 {
            let p = it.value()?;
            o.pattern = (&p[..] != b"*").then_some(&p[..]);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

/// A cursor over the arguments after the fixed ones, for option parsing.
pub struct ArgIter<'a> {
    args: &'a [Bytes],
    pos: usize,
}

impl<'a> ArgIter<'a> {
    pub fn new(args: &'a [Bytes], start: usize) -> ArgIter<'a> {
        ArgIter { args, pos: start }
    }

    pub fn next_arg(&mut self) -> Option<&'a Bytes> {
        let a = self.args.get(self.pos)?;
        self.pos += 1;
        Some(a)
    }

    /// The value that must follow an option (`EX <seconds>`), or a syntax error.
    pub fn value(&mut self) -> Result<&'a Bytes, CmdError> {
        self.next_arg().ok_or(CmdError::Syntax)
    }

    pub fn remaining(&self) -> usize {
        self.args.len().saturating_sub(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"1a"), None);
        assert_eq!(parse_float(b""), None);
        assert_eq!(parse_float(b"0x10"), Some(16.0));
        assert_eq!(parse_float(b"-0x1.8p1"), Some(-3.0));
        assert_eq!(parse_float(b"0x"), None);
        assert_eq!(parse_float(b"1e999"), None);
        assert_eq!(parse_float(b"1e-999"), None);
        assert_eq!(parse_float(b"0e-999"), Some(0.0));
        assert_eq!(parse_float(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_float(b".5"), Some(0.5));
        assert_eq!(parse_float(b"5."), Some(5.0));
    }

    #[test]
    fn scan_cursors_as_strtoul() {
        assert_eq!(scan_cursor(b"0"), Ok(0));
        assert_eq!(scan_cursor(b"+12"), Ok(12));
        assert_eq!(scan_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(scan_cursor(b""), Ok(0));
        assert!(scan_cursor(b" 1").is_err());
        assert!(scan_cursor(b"1x").is_err());
        assert!(scan_cursor(b"-").is_err());
        assert!(scan_cursor(b"18446744073709551616").is_err());
    }

    #[test]
    fn incr_float_text() {}
}
