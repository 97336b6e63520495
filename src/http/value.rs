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
    /// Stream entries in ID order: `{"id": "<ms>-<seq>", "fields": [[field, value], ...]}`,
    /// fields in the order the entry stores them.
    Entries,
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
        // Streams are ordered by ID: the first `limit` entries.
        "stream" => Reader {
            size: "XLEN",
            read: |k, _, limit| {
                vec![
                    b"XRANGE".to_vec(),
                    k.to_vec(),
                    b"-".to_vec(),
                    b"+".to_vec(),
                    b"COUNT".to_vec(),
                    limit.to_string().into_bytes(),
                ]
            },
            shape: Shape::Entries,
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
    if shape == Shape::Entries {
        return entries_to_json(reply);
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
    let enc = encoder(b64);
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
        Shape::Text | Shape::Entries => unreachable!("handled above"),
    };
    let shown = if paired { items.len() / 2 } else { items.len() };
    Ok((value, b64, shown))
}

/// The encoding of a value's strings: base64 when `b64`, else UTF-8 text.
fn encoder(b64: bool) -> impl Fn(&[u8]) -> JsonValue {
    move |b: &[u8]| {
        if b64 {
            JsonValue::String(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                b,
            ))
        } else {
            JsonValue::String(String::from_utf8_lossy(b).into_owned())
        }
    }
}

/// An XRANGE reply (`[[id, [field, value, ...]], ...]`) as the stream shape. One `value_b64`
/// covers every field and value of every entry; IDs are ASCII and never encoded.
fn entries_to_json(reply: &Frame) -> Result<(JsonValue, bool, usize), ApiError> {
    let bad = || ApiError::internal(format!("unexpected stream reply: {reply:?}"));
    let raw = match reply {
        Frame::Array(Some(entries)) => entries,
        Frame::Array(None) => return Ok((JsonValue::Array(Vec::new()), false, 0)),
        _ => return Err(bad()),
    };
    let mut entries = Vec::with_capacity(raw.len());
    for e in raw {
        let Frame::Array(Some(parts)) = e else {
            return Err(bad());
        };
        let [id, fields] = parts.as_slice() else {
            return Err(bad());
        };
        let fields = fields.bulks()?;
        if fields.len() % 2 != 0 {
            return Err(ApiError::internal(
                "odd number of elements in a stream entry",
            ));
        }
        entries.push((id.bytes()?, fields));
    }
    let b64 = entries
        .iter()
        .flat_map(|(_, f)| f.iter())
        .any(|b| std::str::from_utf8(b).is_err());
    let enc = encoder(b64);
    let value = entries
        .iter()
        .map(|(id, fields)| {
            let pairs = fields
                .chunks(2)
                .map(|c| JsonValue::Array(vec![enc(&c[0]), enc(&c[1])]))
                .collect();
            serde_json::json!({"id": String::from_utf8_lossy(id), "fields": JsonValue::Array(pairs)})
        })
        .collect();
    Ok((JsonValue::Array(value), b64, entries.len()))
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

/// A `ttl_ms`: positive, and small enough that now + it is a time (Redis's PEXPIRE refuses a
/// larger one only when it runs, which inside a write's transaction would come after the
/// value was already replaced).
pub fn ttl_arg(v: &JsonValue) -> Result<i64, ApiError> {
    let t = v
        .as_i64()
        .filter(|&t| t > 0)
        .ok_or_else(|| ApiError::bad_request("ttl_ms must be a positive integer (milliseconds)"))?;
    if t.checked_add(crate::commands::now_ms()).is_none() {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "redis_error",
            "ERR invalid expire time in 'pexpire' command",
        ));
    }
    Ok(t)
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
            ApiError::bad_request("'type' is required: string, hash, list, set, zset or stream")
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
    if kind == "stream" {
        require_commands(kind, &[b"XADD"])?;
        let mut cmds = vec![vec![s(b"DEL"), key.clone()]];
        cmds.extend(stream_adds(&key, value, b64)?);
        if let Some(t) = ttl {
            cmds.push(vec![s(b"PEXPIRE"), key, Bytes::from(t.to_string())]);
        }
        return Ok(cmds);
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
            Shape::Text | Shape::Entries => unreachable!("strings and streams handled above"),
        }
    }
    let mut cmds = vec![vec![s(b"DEL"), key.clone()], args];
    if let Some(t) = ttl {
        cmds.push(vec![s(b"PEXPIRE"), key, Bytes::from(t.to_string())]);
    }
    Ok(cmds)
}

/// An entry's ID as the body gives it: what XADD is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryId {
    /// `*` (or no `id`): the node picks it, from its clock.
    Auto,
    /// `<ms>-*`: the node picks the sequence.
    Seq(u64),
    /// `<ms>-<seq>`, or `<ms>` for `<ms>-0`.
    Given(u64, u64),
}

impl EntryId {
    fn parse(s: &str) -> Option<EntryId> {
        let num = |t: &str| -> Option<u64> {
            (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        if s == "*" {
            return Some(EntryId::Auto);
        }
        match s.split_once('-') {
            None => Some(EntryId::Given(num(s)?, 0)),
            Some((ms, "*")) => Some(EntryId::Seq(num(ms)?)),
            Some((ms, seq)) => Some(EntryId::Given(num(ms)?, num(seq)?)),
        }
    }

    fn arg(self) -> Bytes {
        match self {
            EntryId::Auto => Bytes::from_static(b"*"),
            EntryId::Seq(ms) => Bytes::from(format!("{ms}-*")),
            EntryId::Given(ms, seq) => Bytes::from(format!("{ms}-{seq}")),
        }
    }
}

/// One XADD per entry of a stream body. The IDs are checked here as XADD would check them
/// against the stream being rebuilt (each greater than the one before, the first greater than
/// 0-0), so a bad body is a 400 before anything runs rather than an error halfway through the
/// transaction (which, as in Redis, would leave the entries added before it). An automatic ID
/// comes from the node's clock, so a given ID after one could not be checked: refused too.
fn stream_adds(key: &Bytes, value: &JsonValue, b64: bool) -> Result<Vec<Vec<Bytes>>, ApiError> {
    const SHAPE: &str = r#"a stream value is an array of {"id": "<ms>-<seq>", "fields": [[field, value], ...]} entries ("id" optional)"#;
    let entries = value
        .as_array()
        .ok_or_else(|| ApiError::bad_request(SHAPE))?;
    if entries.is_empty() {
        return Err(ApiError::bad_request(
            "a stream value needs at least one entry (a stream is created by adding one); DELETE the key instead",
        ));
    }
    // The last ID so far when it is known: 0-0 for the new stream, unknown after an `*`.
    let mut last: Option<(u64, u64)> = Some((0, 0));
    let mut cmds = Vec::with_capacity(entries.len());
    for (n, entry) in entries.iter().enumerate() {
        let which = || format!("value[{n}]");
        let obj = entry
            .as_object()
            .filter(|o| o.keys().all(|k| k == "id" || k == "fields"))
            .ok_or_else(|| ApiError::bad_request(SHAPE))?;
        let id = match obj.get("id") {
            None | Some(JsonValue::Null) => EntryId::Auto,
            Some(JsonValue::String(s)) => EntryId::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{}: invalid stream ID '{s}' (<ms>-<seq>, <ms>, <ms>-* or *)",
                    which()
                ))
            })?,
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{}: a stream ID must be a string",
                    which()
                )));
            }
        };
        let refuse = |why: String| ApiError::bad_request(format!("{}: {why}", which()));
        let next = match (id, last) {
            (EntryId::Auto, Some((u64::MAX, u64::MAX))) => {
                return Err(refuse(
                    "no ID is left after 18446744073709551615-18446744073709551615".into(),
                ));
            }
            (EntryId::Auto, _) => None,
            (_, None) => {
                return Err(refuse(
                    "an entry with a given ID cannot follow one with an automatic ID (its ID is not known in advance)".into(),
                ));
            }
            (EntryId::Given(ms, seq), Some(prev)) => {
                if (ms, seq) <= prev {
                    return Err(refuse(format!(
                        "ID {ms}-{seq} is not greater than {}-{} (IDs must increase)",
                        prev.0, prev.1
                    )));
                }
                Some((ms, seq))
            }
            (EntryId::Seq(ms), Some(prev)) => {
                let id = if ms == prev.0 {
                    prev.1.checked_add(1).map(|seq| (ms, seq))
                } else {
                    Some((ms, 0))
                };
                match id.filter(|&id| id > prev) {
                    Some(id) => Some(id),
                    None => {
                        return Err(refuse(format!(
                            "ID {ms}-* would not be greater than {}-{} (IDs must increase)",
                            prev.0, prev.1
                        )));
                    }
                }
            }
        };
        last = next;
        let fields = obj
            .get("fields")
            .and_then(JsonValue::as_array)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| {
                refuse("'fields' must be a non-empty array of [field, value] pairs".into())
            })?;
        let mut args = Vec::with_capacity(3 + 2 * fields.len());
        args.extend([Bytes::from_static(b"XADD"), key.clone(), id.arg()]);
        for pair in fields {
            let pair = pair
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| refuse("'fields' is an array of [field, value] pairs".into()))?;
            args.push(json_bytes(&pair[0], b64, "a field")?);
            args.push(json_bytes(&pair[1], b64, "a value")?);
        }
        cmds.push(args);
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
            "bad_request",
            "a stream is made by adding an entry"
        );
    }

    fn entry(id: &[u8], fields: &[&[u8]]) -> Frame {
        Frame::Array(Some(vec![
            Frame::Bulk(Some(Bytes::copy_from_slice(id))),
            bulks(fields),
        ]))
    }

    #[test]
    fn stream_entries_keep_their_order_and_ids_are_never_base64() {
        let reply = Frame::Array(Some(vec![
            entry(b"1-1", &[b"z", b"1", b"a", b"2"]),
            entry(b"2-0", &[b"f", b"v"]),
        ]));
        let (v, b64, n) = value_to_json(Shape::Entries, &reply).unwrap();
        assert!(!b64);
        assert_eq!(n, 2);
        assert_eq!(
            v,
            json!([
                {"id": "1-1", "fields": [["z", "1"], ["a", "2"]]},
                {"id": "2-0", "fields": [["f", "v"]]},
            ]),
            "fields as stored, not sorted"
        );
        let reply = Frame::Array(Some(vec![
            entry(b"1-1", &[b"f", b"v"]),
            entry(b"2-0", &[b"f", b"\xff"]),
        ]));
        let (v, b64, _) = value_to_json(Shape::Entries, &reply).unwrap();
        assert!(b64, "one binary value makes every field and value base64");
        assert_eq!(
            v,
            json!([
                {"id": "1-1", "fields": [["Zg==", "dg=="]]},
                {"id": "2-0", "fields": [["Zg==", "/w=="]]},
            ])
        );
        let (v, _, n) = value_to_json(Shape::Entries, &Frame::Array(Some(vec![]))).unwrap();
        assert_eq!((v, n), (json!([]), 0));
        let odd = Frame::Array(Some(vec![entry(b"1-1", &[b"f"])]));
        assert_eq!(
            value_to_json(Shape::Entries, &odd).unwrap_err().code,
            "internal"
        );
    }

    fn text(cmds: &[Vec<Bytes>]) -> Vec<Vec<String>> {
        cmds.iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn stream_writes_are_del_then_one_xadd_per_entry() {
        let body = json!({"type":"stream","ttl_ms":10,"value":[
            {"id":"5-1","fields":[["b","1"],["a","2"]]},
            {"id":"5-*","fields":[["f","v"]]},
            {"id":"7","fields":[["f","v"]]},
            {"fields":[["f","v"]]},
            {"id":"*","fields":[["f","v"]]},
        ]});
        let cmds = write_commands(b"s", body.as_object().unwrap()).unwrap();
        assert_eq!(
            text(&cmds),
            vec![
                vec!["DEL", "s"],
                vec!["XADD", "s", "5-1", "b", "1", "a", "2"],
                vec!["XADD", "s", "5-*", "f", "v"],
                vec!["XADD", "s", "7-0", "f", "v"],
                vec!["XADD", "s", "*", "f", "v"],
                vec!["XADD", "s", "*", "f", "v"],
                vec!["PEXPIRE", "s", "10"],
            ]
        );
        let body = json!({"type":"stream","value_b64":true,"value":[{"id":"1-1","fields":[["Zg==","/w=="]]}]});
        let cmds = write_commands(b"s", body.as_object().unwrap()).unwrap();
        assert_eq!(
            &cmds[1][3..],
            [Bytes::from_static(b"f"), Bytes::from_static(b"\xff")]
        );
    }

    #[test]
    fn stream_ids_that_xadd_would_refuse_are_a_400_before_anything_runs() {
        let err = |value: serde_json::Value| {
            let body = json!({"type":"stream","value":value});
            let e = write_commands(b"s", body.as_object().unwrap()).unwrap_err();
            assert_eq!(e.code, "bad_request", "{value}");
            e.message
        };
        let f = json!([["f", "v"]]);
        assert!(err(json!([{"id":"0-0","fields":f}])).contains("not greater than 0-0"));
        assert!(err(json!([{"id":"0","fields":f}])).contains("not greater than 0-0"));
        err(json!([{"id":"2-2","fields":f},{"id":"2-2","fields":f}]));
        err(json!([{"id":"3-0","fields":f},{"id":"2-*","fields":f}]));
        err(json!([{"id":"3-18446744073709551615","fields":f},{"id":"3-*","fields":f}]));
        assert!(err(json!([{"fields":f},{"id":"9-9","fields":f}])).contains("automatic"));
        err(json!([{"fields":f},{"id":"9-*","fields":f}]));
        for bad in [
            "",
            "-",
            "+",
            "1-",
            "-1",
            "a-1",
            "1-x",
            "1-2-3",
            " 1",
            "+1",
            "18446744073709551616",
        ] {
            assert!(
                err(json!([{"id":bad,"fields":f}])).contains("invalid stream ID"),
                "{bad}"
            );
        }
        err(json!([{"id":1,"fields":f}]));
        err(json!([{"id":"1-1"}]));
        err(json!([{"id":"1-1","fields":[]}]));
        err(json!([{"id":"1-1","fields":[["f"]]}]));
        err(json!([{"id":"1-1","fields":f,"extra":true}]));
        err(json!([["f", "v"]]));
        err(json!({"id":"1-1","fields":f}));
        // Exact upper edge: the last possible ID is fine, nothing after it is.
        let max = "18446744073709551615-18446744073709551615";
        let body = json!({"type":"stream","value":[{"id":max,"fields":f}]});
        assert!(write_commands(b"s", body.as_object().unwrap()).is_ok());
        err(json!([{"id":max,"fields":f},{"fields":f}]));
    }
}
