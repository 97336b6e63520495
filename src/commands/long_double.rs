//! The x87 80-bit "long double" that Redis computes INCRBYFLOAT and HINCRBYFLOAT in (on
//! x86-64 Linux), emulated so the results are Redis's to the last digit: a 64-bit significand,
//! exact parsing of decimal and hexadecimal text (as `strtold`), exact addition rounded half to
//! even, and Redis's "human" printing (`%.17Lf` with trailing zeros removed, never "-0").
//! Arbitrary-precision integers (`num-bigint`) keep every step exact before its one rounding.

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};

/// A finite value: `(-1)^neg × mant × 2^exp`, `mant` with its top bit set (or 0 for zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// The largest binary exponent of a finite value's top bit (`LDBL_MAX_EXP - 1`).
const MAX_TOP_EXP: i64 = 16383;
/// Below the smallest subnormal (`2^-16445`) a value is zero; `strtold` reports ERANGE.
const MIN_TOP_EXP: i64 = -16445;

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        mant: 0,
        exp: 0,
    };

    fn is_zero(&self) -> bool {
        self.mant == 0
    }

    /// `n × 2^e`, rounded to 64 bits half to even; `sticky`: something nonzero lies below `n`'s
    /// last bit (so a halfway remainder is above half). None past the largest finite value.
    fn from_big(neg: bool, n: BigUint, e: i64, sticky: bool) -> Option<LongDouble> {
        if n.is_zero() {
            return Some(LongDouble { neg, ..Self::ZERO });
        }
        let bits = n.bits() as i64;
        let (mant, exp) = if bits <= 64 {
            let m = n.to_u64().unwrap_or(0);
            (m << (64 - bits), e - (64 - bits))
        } else {
            let shift = (bits - 64) as usize;
            let q: BigUint = &n >> shift;
            let rest: BigUint = &n - (&q << shift);
            let half = BigUint::one() << (shift - 1);
            let mut m = q.to_u64().unwrap_or(u64::MAX);
            let up = rest > half || (rest == half && (sticky || m & 1 == 1));
            let mut exp = e + shift as i64;
            if up {
                match m.checked_add(1) {
                    Some(v) => m = v,
                    None => {
                        m = 1 << 63;
                        exp += 1;
                    }
                }
            }
            (m, exp)
        };
        (exp + 63 <= MAX_TOP_EXP).then_some(LongDouble { neg, mant, exp })
    }

    /// The exact sum, rounded once. None when it overflows (Redis: "would produce ...
    /// Infinity").
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        if other.is_zero() {
            return Some(if self.is_zero() {
                // IEEE: -0 + -0 is -0, any other zero sum is +0.
                LongDouble {
                    neg: self.neg && other.neg,
                    ..Self::ZERO
                }
            } else {
                self
            });
        }
        if self.is_zero() {
            return Some(other);
        }
        let (big, small) = if self.exp + 63 >= other.exp + 63 {
            (self, other)
        } else {
            (other, self)
        };
        // A term more than 66 bits below the other is under a quarter of its last place: the
        // sum rounds to the larger term.
        if big.exp - small.exp > 130 {
            return Some(big);
        }
        let base = small.exp;
        let a = BigUint::from(big.mant) << (big.exp - base) as usize;
        let b = BigUint::from(small.mant);
        let (neg, mag) = if big.neg == small.neg {
            (big.neg, a + b)
        } else if a >= b {
            (big.neg, a - b)
        } else {
            (small.neg, b - a)
        };
        if mag.is_zero() {
            return Some(Self::ZERO);
        }
        Self::from_big(neg, mag, base, false)
    }

    /// Parses text as `strtold` does and Redis's `string2ld` accepts it: an optional sign, then
    /// a decimal (`12`, `1.5e-3`, `.5`, `5.`) or a hexadecimal (`0x1.8p1`) number, or `inf`.
    /// None for anything else, for NaN, and for values `strtold` reports out of range.
    /// `Some(Err(neg))`: an infinity.
    pub fn parse(text: &[u8]) -> Option<Result<LongDouble, bool>> {
        // Redis's `string2ld` refuses 5120 bytes and more (MAX_LONG_DOUBLE_CHARS), which also
        // bounds the big-integer work below.
        if text.len() >= 5 * 1024 {
            return None;
        }
        let s = std::str::from_utf8(text).ok()?;
        let (neg, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = body.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            return Some(Err(neg));
        }
        let parsed = match lower.strip_prefix("0x") {
            Some(hex) => parse_hex(neg, hex),
            None => parse_decimal(neg, &lower),
        }?;
        Some(Ok(parsed))
    }

    /// Redis's human form (`ld2string` with `LD_STR_HUMAN`): `%.17Lf`, trailing zeros and a
    /// bare point removed, "-0" written "0".
    pub fn to_human(&self) -> String {
        const SCALE_DIGITS: usize = 17;
        let scale = BigUint::from(10u64).pow(SCALE_DIGITS as u32);
        // The value times 10^17, rounded half to even to an integer.
        let scaled: BigUint = if self.exp >= 0 {
            (BigUint::from(self.mant) << self.exp as usize) * &scale
        } else {
            let s = (-self.exp) as usize;
            let n = BigUint::from(self.mant) * &scale;
            let q: BigUint = &n >> s;
            let rest: BigUint = &n - (&q << s);
            let half = BigUint::one() << (s - 1);
            let odd = q.bit(0);
            if rest > half || (rest == half && odd) {
                q + 1u32
            } else {
                q
            }
        };
        let int_part = &scaled / &scale;
        let frac = (&scaled % &scale).to_string();
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        out.push_str(&int_part.to_string());
        let frac = format!("{frac:0>SCALE_DIGITS$}");
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" { "0".to_string() } else { out }
    }
}

/// `int[.frac][<marker>[sign]digits]` with `int` and `frac` made of `digit`s (at least one):
/// (int, frac, exponent). An exponent far past any finite or nonzero value is clamped (the
/// callers' range checks decide).
fn split_number(s: &str, marker: char, digit: fn(&u8) -> bool) -> Option<(&str, &str, i64)> {
    let (mantissa, exp_part) = match s.find(marker) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int_digits, frac_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    // Checked here: the big-integer parser would also take '_' and a sign.
    if !int_digits
        .bytes()
        .chain(frac_digits.bytes())
        .all(|c| digit(&c))
    {
        return None;
    }
    let exp = match exp_part {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let v: i64 = digits.parse().unwrap_or(1_000_000).min(1_000_000);
            if e.starts_with('-') { -v } else { v }
        }
    };
    Some((int_digits, frac_digits, exp))
}

/// `digits[.digits][e[sign]digits]`, exactly.
fn parse_decimal(neg: bool, s: &str) -> Option<LongDouble> {
    let (int_digits, frac_digits, exp) = split_number(s, 'e', u8::is_ascii_digit)?;
    let exp10 = exp - frac_digits.len() as i64;
    let all: String = format!("{int_digits}{frac_digits}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let n = BigUint::parse_bytes(digits.as_bytes(), 10)?;
    // Out of range for sure: strtold reports ERANGE (Redis refuses the value).
    let magnitude = digits.len() as i64 + exp10;
    if !(-4952..=4933).contains(&magnitude) {
        return None;
    }
    let value = if exp10 >= 0 {
        LongDouble::from_big(neg, n * BigUint::from(10u32).pow(exp10 as u32), 0, false)?
    } else {
        let den = BigUint::from(10u32).pow((-exp10) as u32);
        // Enough quotient bits that the rounding sees 64 of them and more.
        let shift = (den.bits() as i64 - n.bits() as i64 + 66).max(0) as usize;
        let num = n << shift;
        let q = &num / &den;
        let sticky = !(&num % &den).is_zero();
        LongDouble::from_big(neg, q, -(shift as i64), sticky)?
    };
    (value.exp + 63 >= MIN_TOP_EXP).then_some(value)
}

/// The part after `0x`: `hex[.hex][p[sign]digits]`, exactly.
fn parse_hex(neg: bool, s: &str) -> Option<LongDouble> {
    let (int_digits, frac_digits, exp) = split_number(s, 'p', u8::is_ascii_hexdigit)?;
    let all = format!("{int_digits}{frac_digits}");
    let n = if all.trim_start_matches('0').is_empty() {
        BigUint::zero()
    } else {
        BigUint::parse_bytes(all.as_bytes(), 16)?
    };
    let exp2 = exp - 4 * frac_digits.len() as i64;
    let value = LongDouble::from_big(neg, n, exp2, false)?;
    (value.is_zero() || value.exp + 63 >= MIN_TOP_EXP).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(s: &str) -> LongDouble {
        LongDouble::parse(s.as_bytes()).unwrap().unwrap()
    }

    fn sum(a: &str, b: &str) -> String {
        ld(a).checked_add(ld(b)).unwrap().to_human()
    }

    #[test]
    fn prints_as_redis() {
        // redis-server 7.0.15's INCRBYFLOAT replies for the same steps.
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("0", "0.024390243902439025"), "0.02439024390243902");
        assert_eq!(sum("0.02439024390243902", "-0.024390243902439025"), "0");
        assert_eq!(sum("0", "1e400").len(), 401);
        assert_eq!(sum("5200", "0"), "5200");
        assert_eq!(sum("1.5", "-1.75"), "-0.25");
        assert_eq!(
            sum("0.1", "12345678901234567"),
            "12345678901234567.099609375"
        );
        assert_eq!(sum("0", "0x1.8p1"), "3");
        assert_eq!(sum("0", "1e-20"), "0");
    }

    #[test]
    fn parses_as_strtold() {
        let long = format!("0.{}", "1".repeat(6000));
        for bad in [
            "", "abc", ".", "1e", "1e+", "nan", " 1", "1 ", "0x", "+-1", "1e5000", "1e-5000",
            "0x1_0", "0x+1", "0x1._8", "1_0", &long,
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert_eq!(LongDouble::parse(b"-inf"), Some(Err(true)));
        assert_eq!(ld(".5").to_human(), "0.5");
        assert_eq!(ld("5.").to_human(), "5");
        assert_eq!(ld("0e-5000").to_human(), "0");
        assert_eq!(ld("-0").to_human(), "0");
    }

    #[test]
    fn addition_rounds_once_and_overflows_to_none() {
        let max = ld("1.18973149535723176502e4932");
        assert!(max.checked_add(max).is_none());
        // 1e30 is not a long double: the nearest one, as redis-server prints it.
        assert_eq!(sum("1e30", "1e-30"), "1000000000000000000024696061952");
        assert_eq!(sum("3", "-3"), "0");
    }
}
