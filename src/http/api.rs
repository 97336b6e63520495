//! `/api/v1`: node info, the cluster view, key listing (SCAN) and one key's value and TTL
//! (docs/api.md is the contract). Every key operation runs commands through an internal client
//! ([`Session`]), so HTTP reads and writes behave, and are counted, as RESP ones.
//!
//! Values are read and written per type through that type's commands (HGETALL, LRANGE,
//! SMEMBERS, ZRANGE ... WITHSCORES; DEL + HSET/RPUSH/SADD/ZADD in MULTI), so a type works here
//! as soon as its commands are in the table, and is a 400 `unsupported_type` until then.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::routing::{any, get};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as JsonValue};

use super::AppState;
use super::error::ApiError;
use super::exec::{Frame, Session, has_command, wait_unpaused};
use super::view::{self, base64_decode, bytes_to_json};
use crate::cluster::slots::key_hash_slot;

const KEY_PREFIX: &str = "/api/v1/keys/";
/// Default cut for aggregate values (elements) and strings (bytes), as docs/api.md says.
const DEFAULT_ELEMENTS: usize = 1000;
const DEFAULT_BYTES: usize = 1 << 20;
const MAX_SCAN_COUNT: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/info", get(info))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/keys", get(list_keys))
        .route(
            "/api/v1/keys/{*key}",
            get(get_key)
                .put(put_key)
                .patch(patch_key)
                .delete(delete_key)
                .fallback(method_not_allowed),
        )
        .route("/api/v1/{*rest}", any(no_such_endpoint))
}

async fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint (see docs/api.md)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint takes GET, PUT, PATCH or DELETE",
    )
}

/// Query strings that do not parse are a 400 in the API's error shape.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

async fn info(State(s): State<AppState>) -> Json<view::Info> {
    Json(view::info(&s.node))
}

async fn cluster(State(s): State<AppState>) -> Json<view::Cluster> {
    Json(view::cluster(&s.node))
}

/// The client's address when the server was started with connect info (the node's is).
pub fn peer(parts_ext: &axum::http::Extensions) -> SocketAddr {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The key in `/api/v1/keys/{key}`: percent-decoded bytes of the raw path (axum's `Path` would
/// refuse keys that are not UTF-8).
fn key_from_uri(uri: &Uri) -> Result<Vec<u8>, ApiError> {
    let raw = uri
        .path()
        .strip_prefix(KEY_PREFIX)
        .ok_or_else(|| ApiError::bad_request("expected /api/v1/keys/{key}"))?;
    Ok(percent_encoding::percent_decode_str(raw).collect())
}

/// Writes need `http.allow-writes`, or the bearer token when one is configured.
fn authorize_write(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let (allow, token) = {
        let c = s.node.config.read();
        (c.http_allow_writes, c.http_token.clone())
    };
    if allow {
        return Ok(());
    }
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (token, given) {
        (Some(t), Some(g)) if constant_time_eq(t.as_bytes(), g.trim().as_bytes()) => Ok(()),
        _ => Err(ApiError::writes_disabled()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub cursor: Option<String>,
    pub count: Option<usize>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyEntry {
    pub key: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub key_b64: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl_ms: i64,
    pub slot: u16,
    pub node: String,
}

#[derive(Debug, Serialize)]
pub struct KeysPage {
    pub cursor: String,
    pub keys: Vec<KeyEntry>,
}

/// One SCAN step (db 0) with each key's type and TTL: `/api/v1/keys` and the feed's `scan`.
pub fn scan_page(
    session: &mut Session,
    node_id: &str,
    q: &KeysQuery,
) -> Result<KeysPage, ApiError> {
    let cursor = q.cursor.as_deref().unwrap_or("0");
    let count = q.count.unwrap_or(100).clamp(1, MAX_SCAN_COUNT).to_string();
    let mut args: Vec<&[u8]> = vec![b"SCAN", cursor.as_bytes(), b"COUNT", count.as_bytes()];
    if let Some(p) = &q.pattern {
        args.extend([b"MATCH".as_slice(), p.as_bytes()]);
    }
    if let Some(t) = &q.kind {
        args.extend([b"TYPE".as_slice(), t.as_bytes()]);
    }
    let reply = session.run(&args)?;
    let (next, keys) = match reply {
        Frame::Array(Some(mut parts)) if parts.len() == 2 => {
            let keys = parts.pop().map(|k| k.bulks()).transpose()?;
            let next = parts.pop().map(|c| c.bytes()).transpose()?;
            (next.unwrap_or_default(), keys.unwrap_or_default())
        }
        other => {
            return Err(ApiError::internal(format!(
                "unexpected SCAN reply {other:?}"
            )));
        }
    };
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let kind = session.run(&[b"TYPE", &k])?.bytes()?;
        if &kind[..] == b"none" {
            continue; // deleted or expired since SCAN saw it
        }
        let ttl_ms = session.run(&[b"PTTL", &k])?.int()?;
        let (key, key_b64) = bytes_to_json(&k);
        out.push(KeyEntry {
            key: key.into_owned(),
            key_b64,
            kind: String::from_utf8_lossy(&kind).into_owned(),
            ttl_ms: ttl_ms.max(-1),
            slot: key_hash_slot(&k),
            node: node_id.to_string(),
        });
    }
    Ok(KeysPage {
        cursor: String::from_utf8_lossy(&next).into_owned(),
        keys: out,
    })
}

async fn list_keys(
    State(s): State<AppState>,
    parts: Parts,
    q: Result<Query<KeysQuery>, QueryRejection>,
) -> Result<Json<KeysPage>, ApiError> {
    let q = query(q)?;
    wait_unpaused(&s.node, false).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    Ok(Json(scan_page(&mut session, view::node_id(&s.node), &q)?))
}

#[derive(Debug, Deserialize)]
struct GetQuery {
    limit: Option<usize>,
}

/// One key as GET returns it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub key: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub key_b64: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl_ms: i64,
    pub slot: u16,
    pub node: String,
    pub encoding: String,
    pub size: i64,
    pub value: JsonValue,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub value_b64: bool,
    pub truncated: bool,
}

/// The commands that read a type: its size, the whole value, and a bounded part of it.
struct Reader {
    size: &'static str,
    /// Reads the value cut to `limit` (elements, or bytes for strings) given the size.
    read: fn(key: &[u8], size: i64, limit: usize) -> Vec<Vec<u8>>,
    shape: Shape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
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

fn reader(kind: &str) -> Option<Reader> {
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

fn require_commands(kind: &str, names: &[&[u8]]) -> Result<(), ApiError> {
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

/// Reads one key: 404 when it does not exist.
pub fn read_key(
    session: &mut Session,
    node_id: &str,
    key: &[u8],
    limit: Option<usize>,
) -> Result<KeyView, ApiError> {
    let kind = session.run(&[b"TYPE", key])?.bytes()?;
    let kind = String::from_utf8_lossy(&kind).into_owned();
    if kind == "none" {
        return Err(ApiError::not_found("no such key"));
    }
    let r = reader(&kind).ok_or_else(|| {
        ApiError::unsupported_type(format!("type '{kind}' cannot be shown over HTTP yet"))
    })?;
    let default_limit = if r.shape == Shape::Text {
        DEFAULT_BYTES
    } else {
        DEFAULT_ELEMENTS
    };
    let limit = limit.unwrap_or(default_limit);
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be at least 1"));
    }
    let size = session.run(&[r.size.as_bytes(), key])?.int()?;
    let read = (r.read)(key, size, limit);
    require_commands(&kind, &[r.size.as_bytes(), &read[0]])?;
    // One transaction so TTL, encoding and value describe the same moment.
    let cmds = vec![
        vec![Bytes::from_static(b"PTTL"), Bytes::copy_from_slice(key)],
        vec![
            Bytes::from_static(b"OBJECT"),
            Bytes::from_static(b"ENCODING"),
            Bytes::copy_from_slice(key),
        ],
        vec![
            Bytes::copy_from_slice(r.size.as_bytes()),
            Bytes::copy_from_slice(key),
        ],
        read.into_iter().map(Bytes::from).collect(),
    ];
    let replies = session.transaction(&cmds).map_err(|e| {
        if e.code == "wrong_type" {
            ApiError::conflict("conflict", "the key changed type while being read; retry")
        } else {
            e
        }
    })?;
    let [ttl, encoding, size, value] = <[Frame; 4]>::try_from(replies)
        .map_err(|_| ApiError::internal("EXEC returned the wrong number of replies"))?;
    let ttl_ms = ttl.int()?;
    if ttl_ms == -2 {
        return Err(ApiError::not_found("no such key"));
    }
    let size = size.int()?;
    let (value, value_b64, shown) = value_to_json(r.shape, &value)?;
    let (k, key_b64) = bytes_to_json(key);
    Ok(KeyView {
        key: k.into_owned(),
        key_b64,
        kind,
        ttl_ms,
        slot: key_hash_slot(key),
        node: node_id.to_string(),
        encoding: encoding
            .bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        size,
        value,
        value_b64,
        truncated: (shown as i64) < size,
    })
}

/// A command's reply as the contract's value: the JSON value, whether its strings are base64,
/// and how many bytes (strings) or elements it holds.
fn value_to_json(shape: Shape, reply: &Frame) -> Result<(JsonValue, bool, usize), ApiError> {
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
fn score_to_json(b: &[u8]) -> JsonValue {
    let s = String::from_utf8_lossy(b);
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => serde_json::Number::from_f64(f)
            .map(JsonValue::Number)
            .unwrap_or(JsonValue::String(s.into_owned())),
        _ => JsonValue::String(s.into_owned()),
    }
}

async fn get_key(
    State(s): State<AppState>,
    parts: Parts,
    q: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let q = query(q)?;
    let key = key_from_uri(&parts.uri)?;
    wait_unpaused(&s.node, false).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    Ok(Json(read_key(
        &mut session,
        view::node_id(&s.node),
        &key,
        q.limit,
    )?))
}

fn parse_body(body: &[u8]) -> Result<Map<String, JsonValue>, ApiError> {
    match serde_json::from_slice::<JsonValue>(body) {
        Ok(JsonValue::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

/// A string of the body as bytes, base64-decoded when `b64`.
fn json_bytes(v: &JsonValue, b64: bool, what: &str) -> Result<Bytes, ApiError> {
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

fn ttl_arg(v: &JsonValue) -> Result<i64, ApiError> {
    v.as_i64()
        .filter(|&t| t > 0)
        .ok_or_else(|| ApiError::bad_request("ttl_ms must be a positive integer (milliseconds)"))
}

fn flag(body: &Map<String, JsonValue>, name: &str) -> bool {
    body.get(name).and_then(JsonValue::as_bool).unwrap_or(false)
}

/// The commands that replace `key` with the body's value (run in one transaction).
fn write_commands(key: &[u8], body: &Map<String, JsonValue>) -> Result<Vec<Vec<Bytes>>, ApiError> {
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

async fn put_key(
    State(s): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Json<KeyView>, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let key = key_from_uri(&parts.uri)?;
    let cmds = write_commands(&key, &parse_body(&body)?)?;
    wait_unpaused(&s.node, true).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    session.transaction(&cmds)?;
    Ok(Json(read_key(
        &mut session,
        view::node_id(&s.node),
        &key,
        None,
    )?))
}

async fn patch_key(
    State(s): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Json<KeyView>, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let key = key_from_uri(&parts.uri)?;
    let body = parse_body(&body)?;
    let rename_to = body
        .get("rename_to")
        .map(|v| json_bytes(v, flag(&body, "rename_to_b64"), "rename_to"))
        .transpose()?;
    let ttl = body.get("ttl_ms");
    if rename_to.is_none() && ttl.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give rename_to and/or ttl_ms",
        ));
    }
    let k = Bytes::copy_from_slice(&key);
    let mut cmds = Vec::new();
    match ttl {
        None => {}
        Some(JsonValue::Null) => cmds.push(vec![Bytes::from_static(b"PERSIST"), k.clone()]),
        Some(v) => cmds.push(vec![
            Bytes::from_static(b"PEXPIRE"),
            k.clone(),
            Bytes::from(ttl_arg(v)?.to_string()),
        ]),
    }
    let rename = rename_to.filter(|to| to[..] != key[..]);
    if let Some(to) = &rename {
        cmds.push(vec![Bytes::from_static(b"RENAMENX"), k.clone(), to.clone()]);
    }
    wait_unpaused(&s.node, true).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    if session.run(&[b"EXISTS", &key])?.int()? == 0 {
        return Err(ApiError::not_found("no such key"));
    }
    // Checked first so a refused rename leaves the TTL alone too (RENAMENX below still
    // guards against a key created in between).
    if let Some(to) = &rename
        && session.run(&[b"EXISTS", to])?.int()? != 0
    {
        return Err(key_exists());
    }
    let replies = session.transaction(&cmds).map_err(|e| {
        if e.message.contains("no such key") {
            ApiError::not_found("no such key")
        } else {
            e
        }
    })?;
    if rename.is_some() && replies.last() == Some(&Frame::Int(0)) {
        return Err(key_exists());
    }
    let now = rename.as_deref().unwrap_or(&key);
    Ok(Json(read_key(
        &mut session,
        view::node_id(&s.node),
        now,
        None,
    )?))
}

fn key_exists() -> ApiError {
    ApiError::conflict(
        "key_exists",
        "rename_to names a key that already exists; delete it first",
    )
}

async fn delete_key(State(s): State<AppState>, parts: Parts) -> Result<Json<JsonValue>, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let key = key_from_uri(&parts.uri)?;
    wait_unpaused(&s.node, true).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    let n = session.run(&[b"DEL", &key])?.int()?;
    Ok(Json(serde_json::json!({ "deleted": n })))
}
