//! The libraries Redis gives its scripts besides Lua's own: `cjson` (lua-cjson 2.1's JSON:
//! arrays told from objects by their keys, numbers as `%.14g`, `/` escaped, `cjson.null`) and
//! `bit` (LuaBitOp: 32-bit operations on numbers). The Rust parts here do the work; the
//! prelude in `scripting.rs` wraps them so that errors point at the script's line.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use crate::resp::writer::fmt_g;

/// Deepest nesting `cjson.encode` follows (lua-cjson's default).
const MAX_DEPTH: usize = 1000;

/// lua-cjson's sparse-array rule: an integer-keyed table whose largest key is more than twice
/// its number of items, and more than 10, is refused.
const SPARSE_RATIO: usize = 2;
const SPARSE_SAFE: usize = 10;

/// Registers the tables `__redis__cjson` and `__redis__bit` in `globals` (the prelude makes
/// them read-only as `cjson` and `bit`). Their functions are C functions to Lua, as in Redis,
/// so an error names the script's line even from a tail call.
pub fn register(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let cjson = lua.create_table()?;
    let g = globals.clone();
    cjson.set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(arg_error(lua, &g, 1, "expected 1 argument"));
            }
            let mut out = Vec::new();
            match encode(&args[0], &mut out, 0) {
                Ok(()) => lua.create_string(&out),
                Err(e) => Err(raise(lua, &g, &e)),
            }
        })?,
    )?;
    let g = globals.clone();
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
            match serde_json::from_slice::<serde_json::Value>(&text.as_bytes()) {
                Ok(j) => to_lua(lua, &j),
                Err(e) => Err(raise(lua, &g, &e.to_string())),
            }
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
    Ok(())
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

fn encode_number(n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(fmt_g(n, 14).as_bytes());
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

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => encode_number(*n as f64, out)?,
        Value::Number(n) => encode_number(*n, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(format!(
                    "Cannot serialise, excessive nesting ({})",
                    depth + 1
                ));
            }
            encode_table(t, out, depth + 1)?;
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

fn encode_table(t: &Table, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match array_length(t)? {
        Some(len) if len > 0 => {
            out.push(b'[');
            for i in 1..=len {
                if i > 1 {
                    out.push(b',');
                }
                let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                encode(&v, out, depth)?;
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
                        encode_number(n, out)?;
                        out.push(b'"');
                    }
                    _ => {
                        return Err(
                            "Cannot serialise table: table key must be a number or string".into(),
                        );
                    }
                }
                out.push(b':');
                encode(&v, out, depth)?;
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
