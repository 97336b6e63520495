//! The libraries Redis gives its scripts besides Lua's own: `cjson` (lua-cjson 2.1's JSON:
//! arrays told from objects by their keys, numbers as `%.14g`, `/` escaped, `cjson.null`),
//! `cmsgpack` (lua-cmsgpack 0.4's MessagePack: the smallest integer format, float32 when it
//! loses nothing, arrays for keys 1..n) and `bit` (LuaBitOp: 32-bit operations on numbers). The Rust parts here do the work; the
//! prelude in `scripting.rs` wraps them so that errors point at the script's line.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use crate::resp::writer::fmt_g;

/// Deepest nesting `cjson.encode` and `cjson.decode` follow by default (lua-cjson's).
const MAX_DEPTH: usize = 1000;

/// Deepest nesting followed whatever the settings say: the walks (ours and serde_json's)
/// recurse on the thread's stack, as lua-cjson's stop where Lua's C stack does (8000 slots, a
/// few per level). Past it the usual nesting errors are raised. A release build walks 3000
/// levels on a 2 MiB runtime thread; a debug build's frames are larger (it fails near 650), so
/// its limit is lower.
const HARD_MAX_DEPTH: usize = if cfg!(debug_assertions) { 400 } else { 1000 };

/// lua-cjson's settings that change what encode and decode do, per Lua state (as lua-cjson
/// keeps them with its module): `cjson.encode_max_depth`, `cjson.decode_max_depth`,
/// `cjson.encode_invalid_numbers`.
struct CjsonCfg {
    encode_max_depth: AtomicUsize,
    decode_max_depth: AtomicUsize,
    /// 0 refuse NaN and Inf, 1 write them (`nan`, `inf`), 2 write `null`.
    encode_invalid_numbers: AtomicU8,
}

/// lua-cjson's sparse-array rule: an integer-keyed table whose largest key is more than twice
/// its number of items, and more than 10, is refused.
const SPARSE_RATIO: usize = 2;
const SPARSE_SAFE: usize = 10;

/// Registers the tables `__redis__cjson` and `__redis__bit` in `globals` (the prelude makes
/// them read-only as `cjson` and `bit`). Their functions are C functions to Lua, as in Redis,
/// so an error names the script's line even from a tail call.
pub fn register(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let cjson = lua.create_table()?;
    let cfg = std::sync::Arc::new(CjsonCfg {
        encode_max_depth: MAX_DEPTH.into(),
        decode_max_depth: MAX_DEPTH.into(),
        encode_invalid_numbers: 0.into(),
    });
    let g = globals.clone();
    let c = cfg.clone();
    cjson.set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(arg_error(lua, &g, 1, "expected 1 argument"));
            }
            let mut out = Vec::new();
            match encode(&c, &args[0], &mut out, 0) {
                Ok(()) => lua.create_string(&out),
                Err(e) => Err(raise(lua, &g, &e)),
            }
        })?,
    )?;
    let g = globals.clone();
    let c = cfg.clone();
    cjson.set(
        "decode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(arg_error(lua, &g, 1, "expected 1 argument"));
            }
            let text = match lua.coerce_string(args[0].clone())? {
                Some(s) => s,
                None => {
                    let msg = format!("string expected, got {}", type_name(&args[0]));
                    return Err(arg_error(lua, &g, 1, &msg));
                }
            };
            let text = text.as_bytes();
            let max = c.decode_max_depth.load(Relaxed).min(HARD_MAX_DEPTH);
            if let Err(e) = check_nesting(&text, max) {
                return Err(raise(lua, &g, &e));
            }
            let mut de = serde_json::Deserializer::from_slice(&text);
            // Nesting is bounded above (`decode_max_depth`), not by serde's 128.
            de.disable_recursion_limit();
            let parsed =
                serde::Deserialize::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
            match parsed {
                Ok(j) => to_lua(lua, &j),
                Err(e) => Err(raise(lua, &g, &e.to_string())),
            }
        })?,
    )?;
    // cjson.encode_keep_buffer([bool]): whether encode keeps its buffer between calls, a
    // memory choice with nothing to see in the results; kept as a setting, as lua-cjson does.
    let g = globals.clone();
    let keep = std::cell::Cell::new(true);
    cjson.set(
        "encode_keep_buffer",
        lua.create_function(move |lua, args: MultiValue| {
            match args.front() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(b)) => keep.set(*b),
                Some(v) => {
                    let shown = lua
                        .coerce_string(v.clone())
                        .ok()
                        .flatten()
                        .map(|s| format!(" '{}'", s.to_string_lossy()))
                        .unwrap_or_default();
                    let msg = format!("invalid option{shown}");
                    return Err(arg_error(lua, &g, 1, &msg));
                }
            }
            Ok(keep.get())
        })?,
    )?;
    for (name, encoding) in [("encode_max_depth", true), ("decode_max_depth", false)] {
        let g = globals.clone();
        let c = cfg.clone();
        cjson.set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let cell = if encoding {
                    &c.encode_max_depth
                } else {
                    &c.decode_max_depth
                };
                if args.len() > 1 {
                    return Err(arg_error(lua, &g, 2, "found too many arguments"));
                }
                match args.front() {
                    None | Some(Value::Nil) => {}
                    Some(v) => {
                        let n = match lua.coerce_integer(v.clone())? {
                            Some(n) => n,
                            None => {
                                let msg = format!("number expected, got {}", type_name(v));
                                return Err(arg_error(lua, &g, 1, &msg));
                            }
                        };
                        if !(1..=i32::MAX as i64).contains(&n) {
                            let msg = format!("expected integer between 1 and {}", i32::MAX);
                            return Err(arg_error(lua, &g, 1, &msg));
                        }
                        cell.store(n as usize, Relaxed);
                    }
                }
                Ok(cell.load(Relaxed) as i64)
            })?,
        )?;
    }
    let g = globals.clone();
    let c = cfg.clone();
    cjson.set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() > 1 {
                return Err(arg_error(lua, &g, 2, "found too many arguments"));
            }
            match args.front() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(b)) => c.encode_invalid_numbers.store(u8::from(*b), Relaxed),
                Some(v) => {
                    let text = lua.coerce_string(v.clone())?.map(|s| s.to_string_lossy());
                    match text.as_deref() {
                        Some("off") => c.encode_invalid_numbers.store(0, Relaxed),
                        Some("on") => c.encode_invalid_numbers.store(1, Relaxed),
                        Some("null") => c.encode_invalid_numbers.store(2, Relaxed),
                        Some(other) => {
                            let msg = format!("invalid option '{other}'");
                            return Err(arg_error(lua, &g, 1, &msg));
                        }
                        None => {
                            let msg = format!("string expected, got {}", type_name(v));
                            return Err(arg_error(lua, &g, 1, &msg));
                        }
                    }
                }
            }
            Ok(match c.encode_invalid_numbers.load(Relaxed) {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    cjson.set("null", Value::LightUserData(null()))?;
    globals.set("__redis__cjson", cjson)?;

    let bit = lua.create_table()?;
    for name in [
        "tobit", "bnot", "bswap", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol",
        "ror", "tohex",
    ] {
        let g = globals.clone();
        let f = lua.create_function(move |lua, args: MultiValue| {
            let arg = |i: usize| -> mlua::Result<i32> {
                let v = args.get(i);
                match v
                    .map(|v| lua.coerce_number(v.clone()))
                    .transpose()?
                    .flatten()
                {
                    Some(n) => Ok(tobit(n)),
                    None => {
                        let got = v.map_or("no value", type_name);
                        let msg = format!("number expected, got {got}");
                        Err(arg_error(lua, &g, i + 1, &msg))
                    }
                }
            };
            let x = arg(0)?;
            let r: i32 = match name {
                "tobit" => x,
                "bnot" => !x,
                "bswap" => x.swap_bytes(),
                "band" | "bor" | "bxor" => {
                    let mut acc = x;
                    for i in 1..args.len() {
                        let v = arg(i)?;
                        acc = match name {
                            "band" => acc & v,
                            "bor" => acc | v,
                            _ => acc ^ v,
                        };
                    }
                    acc
                }
                "tohex" => {
                    let mut n = if args.len() > 1 { arg(1)? } else { 8 };
                    let upper = n < 0;
                    if upper {
                        n = -n;
                    }
                    let n = n.clamp(0, 8) as usize;
                    let text = if upper {
                        format!("{:08X}", x as u32)
                    } else {
                        format!("{:08x}", x as u32)
                    };
                    return Ok(Value::String(lua.create_string(&text[8 - n..])?));
                }
                _ => {
                    let s = arg(1)? as u32 & 31;
                    match name {
                        "lshift" => ((x as u32) << s) as i32,
                        "rshift" => ((x as u32) >> s) as i32,
                        "arshift" => x >> s,
                        "rol" => (x as u32).rotate_left(s) as i32,
                        _ => (x as u32).rotate_right(s) as i32,
                    }
                }
            };
            Ok(Value::Number(f64::from(r)))
        })?;
        bit.set(name, f)?;
    }
    globals.set("__redis__bit", bit)?;

    let msgpack = lua.create_table()?;
    let g = globals.clone();
    msgpack.set(
        "pack",
        lua.create_function(move |lua, args: MultiValue| {
            if args.is_empty() {
                return Err(arg_error(lua, &g, 0, "MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for a in args.iter() {
                mp_encode(a, &mut out, 0);
            }
            lua.create_string(&out)
        })?,
    )?;
    let g = globals.clone();
    msgpack.set(
        "unpack",
        lua.create_function(move |lua, s: mlua::LuaString| {
            mp_unpack(lua, &g, &s.as_bytes(), 0, 0)
        })?,
    )?;
    let g = globals.clone();
    msgpack.set(
        "unpack_one",
        lua.create_function(move |lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            mp_unpack(lua, &g, &s.as_bytes(), 1, offset.unwrap_or(0))
        })?,
    )?;
    let g = globals.clone();
    msgpack.set(
        "unpack_limit",
        lua.create_function(
            move |lua, (s, limit, offset): (mlua::LuaString, Option<i64>, Option<i64>)| {
                mp_unpack(
                    lua,
                    &g,
                    &s.as_bytes(),
                    limit.unwrap_or(0),
                    offset.unwrap_or(0),
                )
            },
        )?,
    )?;
    globals.set("__redis__cmsgpack", msgpack)?;
    Ok(())
}

/// lua-cmsgpack's nesting limit: deeper tables are packed as nil.
const MP_MAX_NESTING: usize = 16;

/// Whether C's `(int64_t)x == x` holds (x86-64's conversion: out of range gives INT64_MIN).
fn int64_equivalent(x: f64) -> Option<i64> {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if x.is_infinite() || x.is_nan() {
        return None;
    }
    let i = if (-TWO63..TWO63).contains(&x) {
        x as i64
    } else {
        i64::MIN
    };
    (i as f64 == x).then_some(i)
}

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_header(len: usize, small: u8, small_max: usize, wide: [u8; 2], out: &mut Vec<u8>) {
    if len <= small_max {
        out.push(small | len as u8);
    } else if len <= 0xffff {
        out.push(wide[0]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(wide[1]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// One value as lua-cmsgpack 0.4 packs it.
fn mp_encode(v: &Value, out: &mut Vec<u8>, level: usize) {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => mp_int(*n, out),
        Value::Number(n) => match int64_equivalent(*n) {
            Some(i) => mp_int(i, out),
            None => {
                let f = *n as f32;
                if f64::from(f) == *n {
                    out.push(0xca);
                    out.extend_from_slice(&f.to_be_bytes());
                } else {
                    out.push(0xcb);
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
        },
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MP_MAX_NESTING => {
            // An array when the keys are exactly 1..n.
            let (mut count, mut max, mut array) = (0usize, 0usize, true);
            let mut pairs: Vec<(Value, Value)> = Vec::new();
            for (k, v) in t.pairs::<Value, Value>().flatten() {
                let idx = match &k {
                    Value::Integer(i) => Some(*i as f64),
                    Value::Number(n) => Some(*n),
                    _ => None,
                };
                match idx {
                    Some(i) if i >= 1.0 && i.fract() == 0.0 && i <= f64::from(i32::MAX) => {
                        max = max.max(i as usize);
                    }
                    _ => array = false,
                }
                count += 1;
                pairs.push((k, v));
            }
            if array && max == count {
                mp_header(count, 0x90, 15, [0xdc, 0xdd], out);
                for i in 1..=count {
                    let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
                    mp_encode(&v, out, level + 1);
                }
            } else {
                mp_header(pairs.len(), 0x80, 15, [0xde, 0xdf], out);
                for (k, v) in &pairs {
                    mp_encode(k, out, level + 1);
                    mp_encode(v, out, level + 1);
                }
            }
        }
        _ => out.push(0xc0),
    }
}

/// Why a MessagePack decode stopped.
enum MpError {
    Missing,
    Bad,
    /// A map key that is nil (Lua's own error, without a position).
    NilKey,
    Lua(mlua::Error),
}

impl From<mlua::Error> for MpError {
    fn from(e: mlua::Error) -> Self {
        MpError::Lua(e)
    }
}

/// lua-cmsgpack's `mp_unpack_full`: with neither a limit nor an offset, every value in
/// `data`; otherwise the offset after the values decoded (-1 at the end of the data) and up to
/// `limit` values from `offset` on.
fn mp_unpack(
    lua: &Lua,
    globals: &Table,
    data: &[u8],
    limit: i64,
    offset: i64,
) -> mlua::Result<MultiValue> {
    if offset < 0 || limit < 0 {
        let msg = format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            data.len()
        );
        return Err(raise(lua, globals, &msg));
    }
    if offset as usize > data.len() {
        let msg = format!(
            "Start offset {offset} greater than input length {}.",
            data.len()
        );
        return Err(raise(lua, globals, &msg));
    }
    let all = limit == 0 && offset == 0;
    let limit = if all { usize::MAX } else { limit as usize };
    let mut pos = offset as usize;
    let mut values = Vec::new();
    while pos < data.len() && values.len() < limit {
        match mp_decode(lua, data, &mut pos) {
            Ok(v) => values.push(v),
            Err(MpError::Missing) => return Err(raise(lua, globals, "Missing bytes in input.")),
            Err(MpError::Bad) => return Err(raise(lua, globals, "Bad data format in input.")),
            Err(MpError::NilKey) => return Err(raise_plain(globals, "table index is nil")),
            Err(MpError::Lua(e)) => return Err(e),
        }
    }
    if !all {
        let next = if pos >= data.len() { -1 } else { pos as i64 };
        values.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_vec(values))
}

fn take<'d>(data: &'d [u8], pos: &mut usize, n: usize) -> Result<&'d [u8], MpError> {
    let b = data.get(*pos..*pos + n).ok_or(MpError::Missing)?;
    *pos += n;
    Ok(b)
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Nesting `cmsgpack.unpack` follows: deeper data is refused (bad format) instead of
/// recursing until the stack runs out.
const MP_MAX_DECODE_DEPTH: usize = 256;

fn mp_decode(lua: &Lua, data: &[u8], pos: &mut usize) -> Result<Value, MpError> {
    mp_decode_at(lua, data, pos, 0)
}

fn mp_decode_at(lua: &Lua, data: &[u8], pos: &mut usize, depth: usize) -> Result<Value, MpError> {
    if depth > MP_MAX_DECODE_DEPTH {
        return Err(MpError::Bad);
    }
    let tag = take(data, pos, 1)?[0];
    let num = |n: f64| Ok(Value::Number(n));
    match tag {
        0x00..=0x7f => num(f64::from(tag)),
        0xe0..=0xff => num(f64::from(tag as i8)),
        0xc0 => Ok(Value::Nil),
        0xc2 => Ok(Value::Boolean(false)),
        0xc3 => Ok(Value::Boolean(true)),
        0xcc..=0xcf => {
            let n = 1usize << (tag - 0xcc);
            num(be(take(data, pos, n)?) as f64)
        }
        0xd0..=0xd3 => {
            let n = 1usize << (tag - 0xd0);
            let raw = be(take(data, pos, n)?);
            let shift = 64 - 8 * n as u32;
            num((((raw << shift) as i64) >> shift) as f64)
        }
        0xca => {
            let b = take(data, pos, 4)?;
            num(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        0xcb => {
            let b = take(data, pos, 8)?;
            num(f64::from_be_bytes(
                b.try_into().map_err(|_| MpError::Missing)?,
            ))
        }
        0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6 => {
            let len = match tag {
                0xa0..=0xbf => usize::from(tag & 0x1f),
                0xd9 | 0xc4 => be(take(data, pos, 1)?) as usize,
                0xda | 0xc5 => be(take(data, pos, 2)?) as usize,
                _ => be(take(data, pos, 4)?) as usize,
            };
            Ok(Value::String(lua.create_string(take(data, pos, len)?)?))
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let len = match tag {
                0x90..=0x9f => usize::from(tag & 0x0f),
                0xdc => be(take(data, pos, 2)?) as usize,
                _ => be(take(data, pos, 4)?) as usize,
            };
            let t = lua.create_table()?;
            for i in 1..=len {
                let v = mp_decode_at(lua, data, pos, depth + 1)?;
                t.raw_set(i, v)?;
            }
            Ok(Value::Table(t))
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let len = match tag {
                0x80..=0x8f => usize::from(tag & 0x0f),
                0xde => be(take(data, pos, 2)?) as usize,
                _ => be(take(data, pos, 4)?) as usize,
            };
            let t = lua.create_table()?;
            for _ in 0..len {
                let k = mp_decode_at(lua, data, pos, depth + 1)?;
                let v = mp_decode_at(lua, data, pos, depth + 1)?;
                if k.is_nil() {
                    return Err(MpError::NilKey);
                }
                t.raw_set(k, v)?;
            }
            Ok(Value::Table(t))
        }
        _ => Err(MpError::Bad),
    }
}

/// `luaL_argerror`: the function named as its caller names it (`?` when called through
/// `pcall`, say).
fn arg_error(lua: &Lua, globals: &Table, narg: usize, extra: &str) -> mlua::Error {
    let name = lua
        .inspect_stack(0, |d| d.names().name.map(|n| n.into_owned()))
        .flatten()
        .unwrap_or_else(|| "?".into());
    raise(
        lua,
        globals,
        &format!("bad argument #{narg} to '{name}' ({extra})"),
    )
}

/// An error as Lua itself raises it (no position), handed over as [`raise`] does.
pub(crate) fn raise_plain(globals: &Table, msg: &str) -> mlua::Error {
    if let Err(e) = globals.raw_set("__redis__pending", msg) {
        return e;
    }
    mlua::Error::runtime(msg.to_string())
}

/// A library error as `luaL_error` raises it: prefixed with the calling line
/// (`user_script:3: ...`). It is left in `__redis__pending` for the prelude's error handler
/// and `pcall` (an error returned from Rust reaches Lua as an opaque value).
fn raise(lua: &Lua, globals: &Table, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1, |d| {
            let src = d.source().short_src.map(|s| s.into_owned());
            match (src, d.current_line()) {
                (Some(src), Some(line)) => format!("{src}:{line}: "),
                _ => String::new(),
            }
        })
        .unwrap_or_default();
    let text = format!("{at}{msg}");
    if let Err(e) = globals.raw_set("__redis__pending", text.as_str()) {
        return e;
    }
    mlua::Error::runtime(text)
}

fn null() -> LightUserData {
    LightUserData(std::ptr::null_mut())
}

/// LuaBitOp's conversion: the number rounded half to even, wrapped to 32 bits.
fn tobit(x: f64) -> i32 {
    let r = x.round_ties_even();
    if !r.is_finite() {
        return 0;
    }
    (r.rem_euclid(4_294_967_296.0) as u64 as u32) as i32
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

fn encode_number(cfg: &CjsonCfg, n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        match cfg.encode_invalid_numbers.load(Relaxed) {
            0 => return Err("Cannot serialise number: must not be NaN or Inf".into()),
            1 if n.is_nan() => {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
            1 => {}
            _ => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    out.extend_from_slice(fmt_g(n, 14).as_bytes());
    Ok(())
}

/// lua-cjson's decode depth check, before parsing: the first `[` or `{` nested deeper than
/// `max` is refused with its position (as lua-cjson's `json_decode_descend`).
fn check_nesting(text: &[u8], max: usize) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        i + 1
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A string as lua-cjson escapes it: quotes, backslash, `/`, control characters and DEL; other
/// bytes as they are.
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode(cfg: &CjsonCfg, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => encode_number(cfg, *n as f64, out)?,
        Value::Number(n) => encode_number(cfg, *n, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth >= cfg.encode_max_depth.load(Relaxed).min(HARD_MAX_DEPTH) {
                return Err(format!(
                    "Cannot serialise, excessive nesting ({})",
                    depth + 1
                ));
            }
            encode_table(cfg, t, out, depth + 1)?;
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                type_name(other)
            ));
        }
    }
    Ok(())
}

/// The array length lua-cjson finds (None: an object).
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let k = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if k.floor() != k || k < 1.0 {
            return Ok(None);
        }
        max = max.max(k as usize);
        items += 1;
    }
    if max > items * SPARSE_RATIO && max > SPARSE_SAFE {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

fn encode_table(cfg: &CjsonCfg, t: &Table, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match array_length(t)? {
        Some(len) if len > 0 => {
            out.push(b'[');
            for i in 1..=len {
                if i > 1 {
                    out.push(b',');
                }
                let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                encode(cfg, &v, out, depth)?;
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            let mut first = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                if !first {
                    out.push(b',');
                }
                first = false;
                match &k {
                    Value::String(s) => encode_string(&s.as_bytes(), out),
                    Value::Integer(_) | Value::Number(_) => {
                        let n = match k {
                            Value::Integer(i) => i as f64,
                            Value::Number(n) => n,
                            _ => unreachable!(),
                        };
                        out.push(b'"');
                        encode_number(cfg, n, out)?;
                        out.push(b'"');
                    }
                    _ => {
                        return Err(
                            "Cannot serialise table: table key must be a number or string".into(),
                        );
                    }
                }
                out.push(b':');
                encode(cfg, &v, out, depth)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Decoded JSON as lua-cjson gives it: null as `cjson.null`, numbers as Lua numbers.
fn to_lua(lua: &Lua, j: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match j {
        J::Null => Value::LightUserData(null()),
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                t.raw_set(lua.create_string(k)?, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tobit_rounds_half_to_even_and_wraps() {
        assert_eq!(tobit(4_294_967_301.0), 5);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(1.5), 2);
        assert_eq!(tobit(2.5), 2);
        assert_eq!(tobit(2_147_483_648.0), i32::MIN);
    }

    #[test]
    fn strings_escape_as_lua_cjson() {
        let mut out = Vec::new();
        encode_string(b"a\"/\\\n\x01\x7f\xc3\xa9", &mut out);
        assert_eq!(out, b"\"a\\\"\\/\\\\\\n\\u0001\\u007f\xc3\xa9\"".to_vec());
    }
}
