//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO. Bits are numbered from the most significant bit of the first byte, as Redis's.

use bytes::Bytes;

use super::Ctx;
use super::args::{eq_ic, int};
use super::error::{CmdError, CmdResult};
use super::strings::string_bytes;
use super::table::KeySpec;
use super::table::{Command, KEY1, R, RF, WM, cmd};
use crate::observe::events::class;
use crate::store::value::parse_i64_strict;
use crate::store::{Entry, Keyspace, Sds, Value};

/// BITOP's keys: the destination and every source.
const BITOP_KEYS: (i32, i32, i32) = (2, -1, 1);

pub static COMMANDS: &[Command] = &[
    cmd!(
        "setbit",
        4,
        WM,
        KEY1,
        "bitmap",
        "2.2.0",
        setbit,
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."
    )
    .specs(&[KeySpec::range(&["RW", "access", "update"], 1, 0, 1)]),
    cmd!(
        "getbit",
        3,
        RF,
        KEY1,
        "bitmap",
        "2.2.0",
        getbit,
        "Returns a bit value by offset."
    ),
    cmd!(
        "bitcount",
        -2,
        R,
        KEY1,
        "bitmap",
        "2.6.0",
        bitcount,
        "Counts the number of set bits (population counting) in a string."
    ),
    cmd!(
        "bitpos",
        -3,
        R,
        KEY1,
        "bitmap",
        "2.8.7",
        bitpos,
        "Finds the first set (1) or clear (0) bit in a string."
    ),
    cmd!(
        "bitop",
        -4,
        WM,
        BITOP_KEYS,
        "bitmap",
        "2.6.0",
        bitop,
        "Performs bitwise operations on multiple strings, and stores the result."
    )
    .specs(&[
        KeySpec::range(&["OW", "update"], 2, 0, 1),
        KeySpec::range(&["RO", "access"], 3, -1, 1),
    ]),
    cmd!(
        "bitfield",
        -2,
        WM,
        KEY1,
        "bitmap",
        "3.2.0",
        bitfield,
        "Performs arbitrary bitfield integer operations on strings."
    )
    .specs(&[
        KeySpec::range(&["RW", "access", "update", "variable_flags"], 1, 0, 1)
            .notes("This command allows both access and modification of the key"),
    ]),
    cmd!(
        "bitfield_ro",
        -2,
        RF,
        KEY1,
        "bitmap",
        "6.0.0",
        bitfield_ro,
        "Performs arbitrary read-only bitfield integer operations on strings."
    ),
];

fn offset_error() -> CmdError {
    CmdError::err("bit offset is not an integer or out of range")
}

/// A bit offset argument as Redis's `getBitOffsetFromArgument`: non-negative, its byte below
/// `max_bulk` (see [`offset_limit`]); with `hash_bits`, `#N` means N fields of that width.
fn bit_offset(arg: &[u8], hash_bits: Option<u32>, max_bulk: usize) -> Result<u64, CmdError> {
    let (digits, mul) = match hash_bits {
        Some(bits) if arg.first() == Some(&b'#') => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    let off = parse_i64_strict(digits)
        .ok_or_else(offset_error)?
        .wrapping_mul(mul);
    if off < 0 || (off >> 3) as u64 >= max_bulk as u64 {
        return Err(offset_error());
    }
    Ok(off as u64)
}

/// The bound on a bit offset's byte: `proto-max-bulk-len`, except for commands from a master
/// or the log, which ran where the bound may have been higher (Redis's mustObeyClient).
fn offset_limit(ctx: &Ctx) -> usize {
    if ctx.client.obeyed {
        usize::MAX
    } else {
        ctx.proto_max_bulk_len()
    }
}

/// Redis aborts when an allocation fails; we refuse the command instead.
fn no_memory() -> CmdError {
    CmdError::Msg("OOM not enough memory to grow the string".into())
}

/// Moves a string value's bytes out of its entry (int-encoded ones as their decimal text).
fn take_string(e: &mut Entry) -> Result<Vec<u8>, CmdError> {
    match std::mem::replace(&mut e.value, Value::Int(0)) {
        Value::Str(s) => Ok(s.into_vec()),
        Value::Int(i) => Ok(itoa::Buffer::new().format(i).as_bytes().to_vec()),
        #[allow(unreachable_patterns)]
        other => {
            e.value = other;
            Err(CmdError::WrongType)
        }
    }
}

/// Runs `f` on the string at `key` made long enough to hold bit `maxbit` (created, or padded
/// with zero bytes), as Redis's `lookupStringForBitCommand`; the value is "raw" afterwards.
/// `f` learns whether the string was created or grew: Redis counts such a write as a change
/// even when the bits written were already there.
fn with_bits<T>(
    ks: &mut Keyspace,
    db: usize,
    key: &[u8],
    maxbit: u64,
    f: impl FnOnce(&mut Vec<u8>, bool) -> T,
) -> Result<T, CmdError> {
    let len = (maxbit >> 3) as usize + 1;
    match ks.lookup_write(db, key)? {
        Some(e) => {
            if !e.value.is_string() {
                return Err(CmdError::WrongType);
            }
            let mut v = take_string(e)?;
            let grew = v.len() < len;
            if grew {
                // Past `proto-max-bulk-len` raised by an admin, refuse rather than abort.
                if v.try_reserve_exact(len - v.len()).is_err() {
                    e.value = Value::Str(Sds::from_vec(v));
                    return Err(no_memory());
                }
                v.resize(len, 0);
            }
            let out = f(&mut v, grew);
            e.value = Value::Str(Sds::from_vec(v));
            e.set_raw();
            Ok(out)
        }
        None => {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| no_memory())?;
            v.resize(len, 0);
            let out = f(&mut v, true);
            ks.set(db, key, Value::Str(Sds::from_vec(v)), None, false)?;
            if let Some(e) = ks.lookup_write(db, key)? {
                e.set_raw();
            }
            Ok(out)
        }
    }
}

/// The string at `key` for reading: `None` when missing, WRONGTYPE when not a string.
fn read_string<'k>(
    ks: &'k mut Keyspace,
    db: usize,
    key: &[u8],
) -> Result<Option<std::borrow::Cow<'k, [u8]>>, CmdError> {
    match ks.lookup_read(db, key)? {
        None => Ok(None),
        Some(e) if !e.value.is_string() => Err(CmdError::WrongType),
        Some(e) => Ok(Some(string_bytes(&e.value)?)),
    }
}

pub fn setbit(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2], None, offset_limit(ctx))?;
    let bit_error = || CmdError::err("bit is not an integer or out of range");
    let on = parse_i64_strict(&args[3]).ok_or_else(bit_error)?;
    if on & !1 != 0 {
        return Err(bit_error());
    }
    let (old, changed) = with_bits(ks, ctx.client.db, &args[1], offset, |v, grew| {
        let byte = (offset >> 3) as usize;
        let shift = 7 - (offset & 7);
        let old = (v[byte] >> shift) & 1;
        v[byte] = (v[byte] & !(1 << shift)) | ((on as u8) << shift);
        (old, grew || old as i64 != on)
    })?;
    // Redis 7.0.15 publishes, counts a change and propagates only when something changed.
    if changed {
        ctx.dirty(1);
        ctx.notify(class::STRING, "setbit", &args[1]);
    } else {
        ctx.log_as = Some(Vec::new());
    }
    ctx.out.int(old as i64);
    Ok(())
}

pub fn getbit(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2], None, offset_limit(ctx))?;
    let bit = match read_string(ks, ctx.client.db, &args[1])? {
        Some(s) => s
            .get((offset >> 3) as usize)
            .map_or(0, |b| (b >> (7 - (offset & 7))) & 1),
        None => 0,
    };
    ctx.out.int(bit as i64);
    Ok(())
}

/// Parses the BYTE|BIT unit argument.
fn unit_is_bit(arg: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(arg, "bit") {
        Ok(true)
    } else if eq_ic(arg, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Turns a start..end range (negative from the end) into one clamped to `0..totlen`.
fn clamp_range(mut start: i64, mut end: i64, totlen: i64) -> (i64, i64) {
    if start < 0 {
        start += totlen;
    }
    if end < 0 {
        end += totlen;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= totlen {
        end = totlen - 1;
    }
    (start, end)
}

/// Set bits in `b`, eight bytes at a time.
fn popcount(b: &[u8]) -> i64 {
    let words = b.chunks_exact(8);
    let tail: i64 = words
        .remainder()
        .iter()
        .map(|x| x.count_ones() as i64)
        .sum();
    words
        .map(|w| {
            u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]).count_ones() as i64
        })
        .sum::<i64>()
        + tail
}

pub fn bitcount(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    // Redis 7.0 looks the key up before reading the range: a missing key is 0 whatever follows.
    let Some(s) = read_string(ks, ctx.client.db, &args[1])? else {
        ctx.out.int(0);
        return Ok(());
    };
    let strlen = s.len() as i64;
    let (start, end, in_bits) = match args.len() {
        2 => (0, strlen - 1, false),
        4 | 5 => {
            let start = int(&args[2])?;
            let end = int(&args[3])?;
            // An empty negative range answers before the unit is read (Redis's order).
            if start < 0 && end < 0 && start > end {
                ctx.out.int(0);
                return Ok(());
            }
            let in_bits = args.len() == 5 && unit_is_bit(&args[4])?;
            let totlen = if in_bits { strlen << 3 } else { strlen };
            let (start, end) = clamp_range(start, end, totlen);
            (start, end, in_bits)
        }
        _ => return Err(CmdError::Syntax),
    };
    if start > end {
        ctx.out.int(0);
        return Ok(());
    }
    let count = if in_bits {
        let (first, last) = ((start >> 3) as usize, (end >> 3) as usize);
        // Bits of the edge bytes outside the range are subtracted again.
        let head = !((1u16 << (8 - (start & 7))) - 1) as u8;
        let tail = ((1u16 << (7 - (end & 7))) - 1) as u8;
        popcount(&s[first..=last])
            - (s[first] & head).count_ones() as i64
            - (s[last] & tail).count_ones() as i64
    } else {
        popcount(&s[start as usize..=end as usize])
    };
    ctx.out.int(count);
    Ok(())
}

/// The first bit equal to `bit` in bits `from..=to` of `s`, if any.
fn find_bit(s: &[u8], bit: bool, from: u64, to: u64) -> Option<u64> {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    for (i, &b) in s.iter().enumerate().take(last + 1).skip(first) {
        let mut mask = 0xffu8;
        if i == first {
            mask &= 0xff >> (from & 7);
        }
        if i == last {
            mask &= 0xff << (7 - (to & 7));
        }
        let candidates = if bit { b } else { !b } & mask;
        if candidates != 0 {
            return Some(i as u64 * 8 + candidates.leading_zeros() as u64);
        }
    }
    None
}

pub fn bitpos(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let bit = int(&args[2])?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::err("The bit argument must be 1 or 0."));
    }
    // A missing key is an endless run of zeros.
    let Some(s) = read_string(ks, ctx.client.db, &args[1])? else {
        ctx.out.int(if bit == 1 { -1 } else { 0 });
        return Ok(());
    };
    let strlen = s.len() as i64;
    let (start, end, in_bits, end_given) = match args.len() {
        3 => (0, strlen - 1, false, false),
        4..=6 => {
            let start = int(&args[3])?;
            let in_bits = args.len() == 6 && unit_is_bit(&args[5])?;
            let end = if args.len() >= 5 {
                int(&args[4])?
            } else {
                strlen - 1
            };
            let totlen = if in_bits { strlen << 3 } else { strlen };
            let (start, end) = clamp_range(start, end, totlen);
            (start, end, in_bits, args.len() >= 5)
        }
        _ => return Err(CmdError::Syntax),
    };
    if start > end {
        ctx.out.int(-1);
        return Ok(());
    }
    let (from, to) = if in_bits {
        (start as u64, end as u64)
    } else {
        (start as u64 * 8, end as u64 * 8 + 7)
    };
    let pos = match find_bit(&s, bit == 1, from, to) {
        Some(p) => p as i64,
        // Looking for a clear bit without an explicit end, the string counts as padded with
        // zeros: the answer is the first bit past it.
        None if bit == 0 && !end_given => to as i64 + 1,
        None => -1,
    };
    ctx.out.int(pos);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

pub fn bitop(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    let op = if eq_ic(&args[1], "and") {
        BitOp::And
    } else if eq_ic(&args[1], "or") {
        BitOp::Or
    } else if eq_ic(&args[1], "xor") {
        BitOp::Xor
    } else if eq_ic(&args[1], "not") {
        BitOp::Not
    } else {
        return Err(CmdError::Syntax);
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let db = ctx.client.db;
    // Fold the sources in one by one; a missing key, or the part of a shorter string, counts
    // as zero bytes, so the result is as long as the longest source.
    let mut res: Vec<u8> = Vec::new();
    for (i, key) in args[3..].iter().enumerate() {
        let src = read_string(ks, db, key)?;
        let src: &[u8] = src.as_deref().unwrap_or(&[]);
        if i == 0 {
            res = match op {
                BitOp::Not => src.iter().map(|b| !b).collect(),
                _ => src.to_vec(),
            };
            continue;
        }
        if src.len() > res.len() {
            res.resize(src.len(), 0);
        }
        for (j, r) in res.iter_mut().enumerate() {
            let b = src.get(j).copied().unwrap_or(0);
            match op {
                BitOp::And => *r &= b,
                BitOp::Or => *r |= b,
                BitOp::Xor => *r ^= b,
                BitOp::Not => {}
            }
        }
    }
    let dest = &args[2];
    let len = res.len();
    if len > 0 {
        ks.set(db, dest, Value::Str(Sds::from_vec(res)), None, false)?;
        if let Some(e) = ks.lookup_write(db, dest)? {
            e.set_raw();
        }
        ctx.notify(class::STRING, "set", dest);
        ctx.dirty(1);
    } else if ks.remove(db, dest)?.is_some() {
        ctx.notify(class::GENERIC, "del", dest);
        ctx.dirty(1);
    }
    ctx.out.int(len as i64);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

struct Field {
    op: FieldOp,
    offset: u64,
    bits: u32,
    signed: bool,
    value: i64,
    overflow: Overflow,
}

/// A BITFIELD type: `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = || {
        CmdError::err(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let bits = parse_i64_strict(&arg[1..]).ok_or_else(err)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for o in offset..offset + bits as u64 {
        let b = s.get((o >> 3) as usize).copied().unwrap_or(0);
        value = (value << 1) | ((b >> (7 - (o & 7))) & 1) as u64;
    }
    value
}

fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        v |= u64::MAX << bits;
    }
    v as i64
}

fn set_bits(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let on = (value >> (bits as u64 - 1 - j)) & 1 != 0;
        let o = offset + j;
        let byte = (o >> 3) as usize;
        let shift = 7 - (o & 7);
        if on {
            s[byte] |= 1 << shift;
        } else {
            s[byte] &= !(1 << shift);
        }
    }
}

/// Whether `value + incr` fits `bits` unsigned bits, and the value to store under `overflow`
/// when it does not (Redis's `checkUnsignedBitfieldOverflow`).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> (bool, u64) {
    let max = (1u64 << bits) - 1;
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    let wrapped = value.wrapping_add(incr as u64) & !(u64::MAX << bits);
    if value > max || (incr > 0 && incr > max_incr) {
        (
            true,
            if overflow == Overflow::Sat {
                max
            } else {
                wrapped
            },
        )
    } else if incr < 0 && incr < min_incr {
        (
            true,
            if overflow == Overflow::Sat {
                0
            } else {
                wrapped
            },
        )
    } else {
        (false, 0)
    }
}

/// The signed counterpart (Redis's `checkSignedBitfieldOverflow`).
fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> (bool, i64) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
    {
        (
            true,
            if overflow == Overflow::Sat {
                max
            } else {
                wrapped()
            },
        )
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        (
            true,
            if overflow == Overflow::Sat {
                min
            } else {
                wrapped()
            },
        )
    } else {
        (false, 0)
    }
}

/// Applies a SET or INCRBY: the reply and whether the field's value changed (`None` when
/// OVERFLOW FAIL refused it).
fn write_field(s: &mut [u8], f: &Field) -> Option<(i64, bool)> {
    let before = get_unsigned(s, f.offset, f.bits);
    // (overflowed, bits to store, reply): INCRBY replies the new value, SET the old one.
    let (overflowed, new, reply) = match (f.signed, f.op) {
        (true, FieldOp::IncrBy) => {
            let old = get_signed(s, f.offset, f.bits);
            let (o, lim) = signed_overflow(old, f.value, f.bits, f.overflow);
            let n = if o { lim } else { old.wrapping_add(f.value) };
            (o, n as u64, n)
        }
        (true, _) => {
            let (o, lim) = signed_overflow(f.value, 0, f.bits, f.overflow);
            let n = if o { lim } else { f.value };
            (o, n as u64, get_signed(s, f.offset, f.bits))
        }
        (false, FieldOp::IncrBy) => {
            let (o, lim) = unsigned_overflow(before, f.value, f.bits, f.overflow);
            let n = if o {
                lim
            } else {
                before.wrapping_add(f.value as u64)
            };
            (o, n, n as i64)
        }
        (false, _) => {
            let v = f.value as u64;
            let (o, lim) = unsigned_overflow(v, 0, f.bits, f.overflow);
            (o, if o { lim } else { v }, before as i64)
        }
    };
    if overflowed && f.overflow == Overflow::Fail {
        return None;
    }
    set_bits(s, f.offset, f.bits, new);
    Some((reply, get_unsigned(s, f.offset, f.bits) != before))
}

fn read_field(s: &[u8], f: &Field) -> i64 {
    if f.signed {
        get_signed(s, f.offset, f.bits)
    } else {
        get_unsigned(s, f.offset, f.bits) as i64
    }
}

fn parse_fields(args: &[Bytes], max_bulk: usize) -> Result<Vec<Field>, CmdError> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let sub = &args[j];
        let op = if eq_ic(sub, "get") && remaining >= 2 {
            FieldOp::Get
        } else if eq_ic(sub, "set") && remaining >= 3 {
            FieldOp::Set
        } else if eq_ic(sub, "incrby") && remaining >= 3 {
            FieldOp::IncrBy
        } else if eq_ic(sub, "overflow") && remaining >= 1 {
            let kind = &args[j + 1];
            overflow = if eq_ic(kind, "wrap") {
                Overflow::Wrap
            } else if eq_ic(kind, "sat") {
                Overflow::Sat
            } else if eq_ic(kind, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(&args[j + 1])?;
        let offset = bit_offset(&args[j + 2], Some(bits), max_bulk)?;
        let value = if op == FieldOp::Get {
            0
        } else {
            int(&args[j + 3])?
        };
        fields.push(Field {
            op,
            offset,
            bits,
            signed,
            value,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

fn bitfield_generic(
    ctx: &mut Ctx,
    ks: &mut Keyspace,
    args: &[Bytes],
    read_only: bool,
) -> CmdResult {
    let fields = parse_fields(args, offset_limit(ctx))?;
    let db = ctx.client.db;
    let key = &args[1];
    if fields.iter().all(|f| f.op == FieldOp::Get) {
        let s = read_string(ks, db, key)?;
        let s: &[u8] = s.as_deref().unwrap_or(&[]);
        ctx.out.array(fields.len());
        for f in &fields {
            ctx.out.int(read_field(s, f));
        }
        // Only reads: nothing to propagate.
        ctx.log_as = Some(Vec::new());
        return Ok(());
    }
    if read_only {
        return Err(CmdError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let highest = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max()
        .unwrap_or(0);
    let out = &mut ctx.out;
    let changes = with_bits(ks, db, key, highest, |s, grew| {
        let mut changes = 0;
        out.array(fields.len());
        for f in &fields {
            if f.op == FieldOp::Get {
                out.int(read_field(s, f));
                continue;
            }
            match write_field(s, f) {
                Some((v, changed)) => {
                    out.int(v);
                    changes += (grew || changed) as u64;
                }
                None => out.null(),
            }
        }
        changes
    })?;
    // As Redis 7.0.15: writes that changed nothing (or failed) publish nothing and are not
    // propagated, even when the key was just created.
    if changes > 0 {
        ctx.dirty(changes);
        ctx.notify(class::STRING, "setbit", key);
    } else {
        ctx.log_as = Some(Vec::new());
    }
    Ok(())
}

pub fn bitfield(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, ks, args, false)
}

pub fn bitfield_ro(ctx: &mut Ctx, ks: &mut Keyspace, args: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, ks, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_wrap_and_saturate() {
        assert_eq!(signed_overflow(100, 100, 8, Overflow::Wrap), (true, -56));
        assert_eq!(signed_overflow(100, 100, 8, Overflow::Sat), (true, 127));
        assert_eq!(signed_overflow(-100, -100, 8, Overflow::Sat), (true, -128));
        assert_eq!(
            signed_overflow(i64::MAX, 1, 64, Overflow::Wrap),
            (true, i64::MIN)
        );
        assert_eq!(signed_overflow(5, -3, 8, Overflow::Wrap), (false, 0));
    }

    #[test]
    fn unsigned_wrap_and_saturate() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), (true, 4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), (true, 255));
        assert_eq!(unsigned_overflow(3, -4, 8, Overflow::Sat), (true, 0));
        assert_eq!(unsigned_overflow(3, -4, 8, Overflow::Wrap), (true, 255));
    }

    #[test]
    fn fields_cross_byte_boundaries() {
        let mut s = vec![0u8; 4];
        set_bits(&mut s, 5, 12, 0xabc);
        assert_eq!(get_unsigned(&s, 5, 12), 0xabc);
        assert_eq!(get_signed(&s, 5, 12), 0xabc - 4096);
        assert_eq!(find_bit(&s, true, 0, 31), Some(5));
        assert_eq!(find_bit(&[0xff], false, 0, 7), None);
    }
}
