//! One key's value as JSON, per type (docs/api.md "Bytes in JSON" and the value shapes), read
//! and written through that type's commands: which command reads a type (cut to a limit), how
//! its reply becomes JSON, and which commands replace a key with a JSON value. A type whose
//! commands are not in the table is a 400 `unsupported_type`.

use bytes::Bytes;
use serde_json::{Map, Value as JsonValue};

use super::error::ApiError;
use super::exec::{Frame, has_command};
use super::view::{base64_decode, bytes_to_json};

/// The commands that read a type: its size, the whole value, and a bounded part of it.
pub struct Reader {
    pub size: &'static str,
    /// Reads the value cut to `limit` (elements, or bytes for strings) given the size.
    pub read: fn(key: &[u8], size: i64, limit: usize) -> Vec<Vec<u8>>,
    pub shape: Shape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Text,
    /// Ordered elements (lists).
    Items,
    /// Unordered elements (sets): sorted, so a UI shows them stably.
    Members,
    /// Unordered field/value pairs (hashes): sorted by field.
    Pairs,
    /// Member/score pairs in score order (sorted sets).
    Scored,
}

pub fn reader(kind: &str) -> Option<Reader> {
    let r = match kind {
        "string" => Reader {
            size: "STRLEN",
            read: |k, _, limit| {
                vec![
                    b"GETRANGE".to_vec(),
                    k.to_vec(),
                    b"0".to_vec(),
                    (limit as i64 - 1).to_string().into_bytes(),
                ]
            },
            shape: Shape::Text,
        },
        "list" => Reader {
            size: "LLEN",
            read: |k, _, limit| {
                vec![
                    b"LRANGE".to_vec(),
                    k.to_vec(),
                    b"0".to_vec(),
                    (limit as i64 - 1).to_string().into_bytes(),
                ]
            },
            shape: Shape::Items,
        },
        "zset" => Reader {
            size: "ZCARD",
            read: |k, _, limit| {
                vec![
                    b"ZRANGE".to_vec(),
                    k.to_vec(),
                    b"0".to_vec(),
                    (limit as i64 - 1).to_string().into_bytes(),
                    b"WITHSCORES".to_vec(),
                ]
            },
            shape: Shape::Scored,
        },
        // Hashes and sets have no order to cut by: small ones are read whole, large ones as
        // `limit` distinct random elements.
        "hash" => Reader {
            size: "HLEN",
            read: |k, size, limit| {
                if size as usize <= limit {
                    vec![b"HGETALL".to_vec(), k.to_vec()]
                } else {
                    vec![
                        b"HRANDFIELD".to_vec(),
                        k.to_vec(),
                        limit.to_string().into_bytes(),
                        b"WITHVALUES".to_vec(),
                    ]
                }
            },
            shape: Shape::Pairs,
        },
        "set" => Reader {
            size: "SCARD",
            read: |k, size, limit| {
                if size as usize <= limit {
                    vec![b"SMEMBERS".to_vec(), k.to_vec()]
                } else {
                    vec![
                        b"SRANDMEMBER".to_vec(),
                        k.to_vec(),
                        limit.to_string().into_bytes(),
                    ]
                }
            },
            shape: Shape::Members,
        },
        _ => return None,
    };
    Some(r)
}

pub fn require_commands(kind: &str, names: &[&[u8]]) -> Result<(), ApiError> {
    for n in names {
        let name = String::from_utf8_lossy(n);
        if !has_command(&name) {
            return Err(ApiError::unsupported_type(format!(
                "type '{kind}' is not supported by this node yet (no {} command)",
                name.to_uppercase()
            )));
        }
    }
    Ok(())
}

/// A command's reply as the contract's value: the JSON value, whether its strings are base64,
/// and how many bytes (strings) or elements it holds.
pub fn value_to_json(shape: Shape, reply: &Frame) -> Result<(JsonValue, bool, usize), ApiError> {
    if shape == Shape::Text {
        let b = reply.bytes()?;
        let (s, b64) = bytes_to_json(&b);
        return Ok((JsonValue::String(s.into_owned()), b64, b.len()));
    }
    let mut items = reply.bulks()?;
    let paired = matches!(shape, Shape::Pairs | Shape::Scored);
    if paired && items.len() % 2 != 0 {
        return Err(ApiError::internal("odd number of elements in a pair reply"));
    }
    if shape == Shape::Members {
        items.sort();
    }
    // Base64 applies to every string of the value when any one is not UTF-8 (scores are
    // numbers and never encoded).
    let texts: Vec<&Bytes> = match shape {
        Shape::Scored => items.iter().step_by(2).collect(),
        _ => items.iter().collect(),
    };
    let b64 = texts.iter().any(|b| std::str::from_utf8(b).is_err());
    let enc = |b: &[u8]| -> JsonValue {
        if b64 {
            JsonValue::String(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                b,
            ))
        } else {
            JsonValue::String(String::from_utf8_lossy(b).into_owned())
        }
    };
    let value = match shape {
        Shape::Items | Shape::Members => JsonValue::Array(items.iter().map(|b| enc(b)).collect()),
        Shape::Pairs => {
            let mut pairs: Vec<(&Bytes, &Bytes)> =
                items.chunks(2).map(|c| (&c[0], &c[1])).collect();
            pairs.sort();
            JsonValue::Array(
                pairs
                    .into_iter()
                    .map(|(f, v)| JsonValue::Array(vec![enc(f), enc(v)]))
                    .collect(),
            )
        }
        Shape::Scored => JsonValue::Array(
            items
                .chunks(2)
                .map(|c| JsonValue::Array(vec![enc(&c[0]), score_to_json(&c[1])]))
                .collect(),
        ),
        Shape::Text => unreachable!("handled above"),
    };
    let shown = if paired { items.len() / 2 } else { items.len() };
    Ok((value, b64, shown))
}

/// A score as a JSON number; infinities, which JSON lacks, as the strings Redis prints.
pub fn score_to_json(b: &[u8]) -> JsonValue {
    let s = String::from_utf8_lossy(b);
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => serde_json::Number::from_f64(f)
            .map(JsonValue::Number)
            .unwrap_or(JsonValue::String(s.into_owned())),
        _ => JsonValue::String(s.into_owned()),
    }
}

/// A string of the body as bytes, base64-decoded when `b64`.
pub fn json_bytes(v: &JsonValue, b64: bool, what: &str) -> Result<Bytes, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be a string")))?;
    if b64 {
        base64_decode(s)
            .map(Bytes::from)
            .ok_or_else(|| ApiError::bad_request(format!("{what} is not valid base64")))
    } else {
        Ok(Bytes::copy_from_slice(s.as_bytes()))
    }
}

pub fn ttl_arg(v: &JsonValue) -> Result<i64, ApiError> {
    v.as_i64()
        .filter(|&t| t > 0)
        .ok_or_else(|| ApiError::bad_request("ttl_ms must be a positive integer (milliseconds)"))
}

pub fn flag(body: &Map<String, JsonValue>, name: &str) -> bool {
    body.get(name).and_then(JsonValue::as_bool).unwrap_or(false)
}

/// The commands that replace `key` with the body's value (run in one transaction).
pub fn write_commands(
    key: &[u8],
    body: &Map<String, JsonValue>,
) -> Result<Vec<Vec<Bytes>>, ApiError> {
    let kind = body
        .get("type")
        .and_then(JsonValue::as_str)
        .ok_or_else(|| {
            ApiError::bad_request("'type' is required: string, hash, list, set or zset")
        })?;
    let value = body
        .get("value")
        .ok_or_else(|| ApiError::bad_request("'value' is required"))?;
    let b64 = flag(body, "value_b64");
    let ttl = body
        .get("ttl_ms")
        .filter(|v| !v.is_null())
        .map(ttl_arg)
        .transpose()?;
    let key = Bytes::copy_from_slice(key);
    let s = |b: &'static [u8]| Bytes::from_static(b);
    if kind == "string" {
        let mut set = vec![s(b"SET"), key.clone(), json_bytes(value, b64, "value")?];
        if let Some(t) = ttl {
            set.extend([s(b"PX"), Bytes::from(t.to_string())]);
        }
        return Ok(vec![set]);
    }
    let (cmd, shape): (&'static [u8], Shape) = match kind {
        "hash" => (b"HSET", Shape::Pairs),
        "list" => (b"RPUSH", Shape::Items),
        "set" => (b"SADD", Shape::Members),
        "zset" => (b"ZADD", Shape::Scored),
        other => {
            return Err(ApiError::unsupported_type(format!(
                "type '{other}' cannot be written over HTTP"
            )));
        }
    };
    require_commands(kind, &[cmd])?;
    let items = value
        .as_array()
        .ok_or_else(|| ApiError::bad_request(format!("a {kind} value must be an array")))?;
    if items.is_empty() {
        return Err(ApiError::bad_request(format!(
            "an empty {kind} cannot exist (Redis removes empty aggregates); DELETE the key instead"
        )));
    }
    let mut args = vec![Bytes::from_static(cmd), key.clone()];
    for item in items {
        match shape {
            Shape::Items | Shape::Members => args.push(json_bytes(item, b64, "each element")?),
            Shape::Pairs | Shape::Scored => {
                let pair = item.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                    ApiError::bad_request(format!("a {kind} value is an array of [a, b] pairs"))
                })?;
                if shape == Shape::Pairs {
                    args.push(json_bytes(&pair[0], b64, "a field")?);
                    args.push(json_bytes(&pair[1], b64, "a value")?);
                } else {
                    let score = match &pair[1] {
                        JsonValue::Number(n) => n.to_string(),
                        JsonValue::String(t) if matches!(t.as_str(), "inf" | "+inf" | "-inf") => {
                            t.clone()
                        }
                        _ => return Err(ApiError::bad_request("a score must be a number")),
                    };
                    args.push(Bytes::from(score));
                    args.push(json_bytes(&pair[0], b64, "a member")?);
                }
            }
            Shape::Text => unreachable!("strings handled above"),
        }
    }
    let mut cmds = vec![vec![s(b"DEL"), key.clone()], args];
    if let Some(t) = ttl {
        cmds.push(vec![s(b"PEXPIRE"), key, Bytes::from(t.to_string())]);
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bulks(items: &[&[u8]]) -> Frame {
        Frame::Array(Some(
            items
                .iter()
                .map(|b| Frame::Bulk(Some(Bytes::copy_from_slice(b))))
                .collect(),
        ))
    }

    #[test]
    fn one_binary_element_makes_the_whole_value_base64() {
        let (v, b64, n) =
            value_to_json(Shape::Pairs, &bulks(&[b"f", b"\xff", b"a", b"1"])).unwrap();
        assert!(b64);
        assert_eq!(n, 2);
        // Sorted by field: "a" (YQ==) before "f" (Zg==).
        assert_eq!(v, json!([["YQ==", "MQ=="], ["Zg==", "/w=="]]));
        let (v, b64, _) = value_to_json(Shape::Members, &bulks(&[b"b", b"a"])).unwrap();
        assert!(!b64);
        assert_eq!(v, json!(["a", "b"]));
        let (v, _, _) = value_to_json(Shape::Items, &bulks(&[b"b", b"a"])).unwrap();
        assert_eq!(v, json!(["b", "a"]), "lists keep their order");
    }

    #[test]
    fn scores_are_numbers_and_infinities_strings() {
        let (v, b64, _) =
            value_to_json(Shape::Scored, &bulks(&[b"\xff", b"-inf", b"m", b"1.5"])).unwrap();
        assert!(b64, "members are encoded");
        assert_eq!(v, json!([["/w==", "-inf"], ["bQ==", 1.5]]));
    }

    #[test]
    fn writes_are_del_then_the_types_writer() {
        let body = json!({"type":"zset","value":[["m", 2]],"ttl_ms":10});
        if !has_command("zadd") {
            let e = write_commands(b"k", body.as_object().unwrap()).unwrap_err();
            assert_eq!(e.code, "unsupported_type", "until the zset family lands");
            return;
        }
        let cmds = write_commands(b"k", body.as_object().unwrap()).unwrap();
        let text: Vec<Vec<&[u8]>> = cmds
            .iter()
            .map(|c| c.iter().map(|a| &a[..]).collect())
            .collect();
        assert_eq!(
            text,
            vec![
                vec![&b"DEL"[..], b"k"],
                vec![&b"ZADD"[..], b"k", b"2", b"m"],
                vec![&b"PEXPIRE"[..], b"k", b"10"],
            ]
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        let err = |b: serde_json::Value| write_commands(b"k", b.as_object().unwrap()).unwrap_err();
        assert_eq!(err(json!({"value":"v"})).code, "bad_request");
        assert_eq!(err(json!({"type":"string"})).code, "bad_request");
        assert_eq!(
            err(json!({"type":"string","value":"v","ttl_ms":0})).code,
            "bad_request"
        );
        assert_eq!(
            err(json!({"type":"string","value":"%%","value_b64":true})).code,
            "bad_request"
        );
        assert_eq!(
            err(json!({"type":"stream","value":[]})).code,
            "unsupported_type"
        );
    }
}
