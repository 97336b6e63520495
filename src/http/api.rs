//! `/api/v1`: node info, the cluster view, key listing (SCAN) and one key's value and TTL
//! (docs/api.md is the contract). Every key operation runs commands through an internal client
//! ([`Session`]), so HTTP reads and writes behave, and are counted, as RESP ones.
//!
//! Across the cluster (`peers.rs`): a request about a key another node owns is forwarded to it
//! over the bus, the key listing walks every master in turn behind one composite cursor, and the
//! cluster view asks every node for its own figures.
//!
//! Values are read and written per type through that type's commands (`value.rs`: HGETALL,
//! LRANGE, SMEMBERS, ZRANGE ... WITHSCORES, XRANGE ... COUNT; DEL + HSET/RPUSH/SADD/ZADD, or
//! one XADD per stream entry, in MULTI), so a type works here as soon as its commands are in
//! the table, and is a 400 `unsupported_type` until then.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as JsonValue};

use super::AppState;
use super::error::ApiError;
use super::exec::{Frame, Session, wait_unpaused};
use super::peers::{self, Forwarded, Peer};
use super::value::{
    Shape, flag, json_bytes, reader, require_commands, ttl_arg, value_to_json, write_commands,
};
use super::view::{self, bytes_to_json};
use crate::cluster::bus::HttpCall;
use crate::cluster::slots::key_hash_slot;
use crate::node::Node;

const KEY_PREFIX: &str = "/api/v1/keys/";
/// Default cut for aggregate values (elements) and strings (bytes), as docs/api.md says.
const DEFAULT_ELEMENTS: usize = 1000;
const DEFAULT_BYTES: usize = 1 << 20;
const MAX_SCAN_COUNT: usize = 10_000;

/// The largest request body (a key's value, as JSON): bigger ones get 413 `payload_too_large`.
pub const MAX_BODY: usize = 64 << 20;

pub fn routes() -> Router<AppState> {
    let get_only = || async { method_not_allowed("GET") };
    Router::new()
        .route("/api/v1/info", get(info).fallback(get_only))
        .route("/api/v1/cluster", get(cluster).fallback(get_only))
        .route(
            "/api/v1/cluster/nodes/{id}/drain",
            post(drain_node)
                .delete(drain_node)
                .fallback(|| async { method_not_allowed("POST or DELETE") }),
        )
        .route("/api/v1/keys", get(list_keys).fallback(get_only))
        .route(
            "/api/v1/keys/{*key}",
            get(get_key)
                .put(put_key)
                .patch(patch_key)
                .delete(delete_key)
                .fallback(|| async { method_not_allowed("GET, PUT, PATCH or DELETE") }),
        )
        .route("/api/v1/{*rest}", any(no_such_endpoint))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// A request body, or why it could not be read (too large: 413) in the API's error shape.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(
            status,
            code,
            format!(
                "{} (the API takes bodies up to {MAX_BODY} bytes)",
                r.body_text()
            ),
        )
    })
}

async fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint (see docs/api.md)")
}

fn method_not_allowed(methods: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint takes {methods}"),
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

async fn cluster(State(s): State<AppState>, parts: Parts) -> Json<view::Cluster> {
    let mut c = view::cluster(&s.node);
    if !forwarded(&parts) {
        with_peer_figures(&s.node, &mut c).await;
    }
    Json(c)
}

/// What `POST|DELETE /api/v1/cluster/nodes/{id}/drain` answers: the node's state after the
/// command; `slots` goes to 0 as a drain proceeds (`/api/v1/cluster` follows it for every node).
#[derive(Debug, Serialize)]
struct DrainState {
    node: String,
    draining: bool,
    slots: usize,
}

/// `POST /api/v1/cluster/nodes/{id}/drain` is `CLUSTER DRAIN` on node `id`, `DELETE` is
/// `CLUSTER DRAIN CANCEL`: run by that node through its command path, so a request to any node
/// drains any other (forwarded over the bus, as key requests are).
async fn drain_node(State(s): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let id = parts
        .uri
        .path()
        .strip_prefix("/api/v1/cluster/nodes/")
        .and_then(|rest| rest.strip_suffix("/drain"))
        .unwrap_or_default()
        .to_string();
    let me = view::node_id(&s.node);
    if id != me {
        let peer = peers::masters(&s.node)
            .into_iter()
            .find(|p| p.id == id && !forwarded(&parts))
            .ok_or_else(|| ApiError::not_found(format!("no master {id} in this cluster")))?;
        let call = peers::call_from(&parts, parts.uri.path().to_string(), Vec::new());
        return Ok(peers::to_response(
            peers::forward(&s.node, &peer, call).await?,
        ));
    }
    let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"DRAIN"];
    if parts.method == axum::http::Method::DELETE {
        args.push(b"CANCEL");
    }
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    if let Frame::Error(e) = session.call(&args)? {
        // Manual slot mode, or a node outside a cluster: the node's state refuses it.
        return Err(ApiError::conflict("conflict", e));
    }
    drop(session);
    let node = view::known_nodes(&s.node)
        .into_iter()
        .find(|n| n.myself)
        .ok_or_else(|| ApiError::internal("this node is missing from its own node table"))?;
    Ok(Json(DrainState {
        node: me,
        draining: node.draining,
        slots: node.slot_count,
    })
    .into_response())
}

/// Fills in other nodes' keys, memory, load, clients and hits from what they say of themselves, and the slots
/// they are moving away; a node that does not answer keeps the key count it last gossiped.
async fn with_peer_figures(node: &Arc<Node>, c: &mut view::Cluster) {
    let figures = peers::figures(node).await;
    for n in c.nodes.iter_mut() {
        let Some(f) = figures.get(&n.id) else {
            continue;
        };
        n.keys = f.keys.map_or(n.keys, |v| v as usize);
        n.used_memory = f.used_memory.map_or(n.used_memory, |v| v as usize);
        n.ops_per_sec = f.ops_per_sec.unwrap_or(n.ops_per_sec);
        n.connected_clients = f
            .connected_clients
            .map_or(n.connected_clients, |v| v as usize);
        n.keyspace_hits = f.keyspace_hits.unwrap_or(n.keyspace_hits);
        n.keyspace_misses = f.keyspace_misses.unwrap_or(n.keyspace_misses);
    }
    for f in figures.values() {
        view::merge_moves(&mut c.moving, f.moving_now());
    }
}

/// Whether another node forwarded this request (it is then answered here, as it is).
fn forwarded(parts: &Parts) -> bool {
    parts.extensions.get::<Forwarded>().is_some()
}

/// Has the node owning `key` answer this request when that is another node (docs/api.md,
/// "Across the cluster"); `None` when this node answers it.
async fn forward_key(
    s: &AppState,
    parts: &Parts,
    key: &[u8],
    body: &[u8],
) -> Result<Option<Response>, ApiError> {
    if forwarded(parts) {
        return Ok(None);
    }
    let Some(owner) = peers::owner_elsewhere(&s.node, key) else {
        return Ok(None);
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let a = peers::forward(
        &s.node,
        &owner,
        peers::call_from(parts, path, body.to_vec()),
    )
    .await?;
    Ok(Some(peers::to_response(a)))
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

#[derive(Debug, Clone, Deserialize)]
pub struct KeysQuery {
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub cursor: Option<String>,
    pub count: Option<usize>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `node` lists this node's keys only; the default is the whole cluster.
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyEntry {
    pub key: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_b64: bool,
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl_ms: i64,
    pub slot: u16,
    pub node: String,
}

#[derive(Debug, Serialize, Deserialize)]
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
    let mut q = query(q)?;
    if forwarded(&parts) {
        // This node's part of another node's walk (it asks with scope=node anyway).
        q.scope = Some("node".into());
    }
    Ok(Json(keys_page(&s.node, &Lister::of(&parts), &q).await?))
}

/// Who asks for a page of the key listing: the address its internal client shows (CLIENT
/// LIST), and the `Authorization` it sent, passed on to the nodes asked for their part.
#[derive(Debug, Clone)]
pub struct Lister {
    pub peer: SocketAddr,
    pub authorization: String,
}

impl Lister {
    pub fn of(parts: &Parts) -> Lister {
        Lister {
            peer: peer(&parts.extensions),
            authorization: parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// One page of the key listing, `/api/v1/keys` and the feed's `scan` alike: the whole cluster
/// ([`cluster_page`]) unless `scope` is `node` or this node is not in a cluster.
pub async fn keys_page(
    node: &Arc<Node>,
    lister: &Lister,
    q: &KeysQuery,
) -> Result<KeysPage, ApiError> {
    let local = match q.scope.as_deref() {
        None | Some("cluster") => node.cluster.is_none(),
        Some("node") => true,
        Some(_) => return Err(ApiError::bad_request("scope must be node or cluster")),
    };
    if local {
        local_page(node, lister.peer, q).await
    } else {
        cluster_page(node, lister, q).await
    }
}

async fn local_page(
    node: &Arc<Node>,
    peer: SocketAddr,
    q: &KeysQuery,
) -> Result<KeysPage, ApiError> {
    wait_unpaused(node, false).await;
    let mut session = Session::open(node, peer)?;
    // A replica lists its own copy (`scope=node`): its TYPE and PTTL are replica reads, as a
    // READONLY client's (they were answered with MOVED to the master).
    session.read_from_replica();
    scan_page(&mut session, &view::node_id(node), q)
}

/// One page of the cluster-wide listing. The masters are walked one after the other in node-ID
/// order, each with its own SCAN; the cursor is `<node id>:<that node's cursor>`, so it stays
/// valid when nodes join or leave (a node that left is passed over). A node that finishes its
/// SCAN before `count` keys were found hands over to the next one within the same page, so a
/// small cluster is listed in one request. A key is listed by the node holding it, so once per
/// full iteration while it stays in place (SCAN's guarantee). A node marked failed is passed
/// over: its keys cannot be read.
async fn cluster_page(
    node: &Arc<Node>,
    lister: &Lister,
    q: &KeysQuery,
) -> Result<KeysPage, ApiError> {
    let masters = peers::masters(node);
    let (after, mut cursor) = match q.cursor.as_deref().unwrap_or("0") {
        "0" => (None, "0".to_string()),
        c => {
            let (id, cur) = c
                .split_once(':')
                .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
            (Some(id), cur.to_string())
        }
    };
    let mut at = match after {
        None => 0,
        Some(id) => masters
            .iter()
            .position(|m| m.id.as_str() >= id)
            .unwrap_or(masters.len()),
    };
    if masters
        .get(at)
        .is_some_and(|m| Some(m.id.as_str()) != after)
    {
        cursor = "0".into();
    }
    let count = q.count.unwrap_or(100).clamp(1, MAX_SCAN_COUNT);
    let mut keys = Vec::new();
    while let Some(n) = masters.get(at) {
        let page = if n.failed {
            KeysPage {
                cursor: "0".into(),
                keys: Vec::new(),
            }
        } else if n.myself {
            let local = KeysQuery {
                cursor: Some(cursor.clone()),
                count: Some(count - keys.len()),
                ..q.clone()
            };
            local_page(node, lister.peer, &local).await?
        } else {
            peer_page(node, lister, n, q, &cursor, count - keys.len()).await?
        };
        keys.extend(page.keys);
        if page.cursor != "0" {
            return Ok(KeysPage {
                cursor: format!("{}:{}", n.id, page.cursor),
                keys,
            });
        }
        at += 1;
        cursor = "0".into();
        if keys.len() >= count {
            break;
        }
    }
    let cursor = match masters.get(at) {
        Some(m) => format!("{}:0", m.id),
        None => "0".into(),
    };
    Ok(KeysPage { cursor, keys })
}

/// One SCAN step on another node, over the bus.
async fn peer_page(
    node: &Node,
    lister: &Lister,
    n: &Peer,
    q: &KeysQuery,
    cursor: &str,
    count: usize,
) -> Result<KeysPage, ApiError> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
    let mut path = format!(
        "/api/v1/keys?scope=node&cursor={}&count={count}",
        enc(cursor)
    );
    if let Some(p) = &q.pattern {
        path.push_str(&format!("&match={}", enc(p)));
    }
    if let Some(t) = &q.kind {
        path.push_str(&format!("&type={}", enc(t)));
    }
    let call = HttpCall {
        method: "GET".into(),
        path_and_query: path,
        authorization: lister.authorization.clone(),
        body: Vec::new(),
    };
    let a = peers::forward(node, n, call).await?;
    if a.status != 200 {
        let body: JsonValue = serde_json::from_slice(&a.body).unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no reason given");
        let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
        return Err(ApiError::new(
            status,
            "peer_error",
            format!("node {}: {message}", n.id),
        ));
    }
    serde_json::from_slice(&a.body)
        .map_err(|e| ApiError::internal(format!("node {} sent a bad key page: {e}", n.id)))
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
    let limit = limit.unwrap_or(default_limit).min(i64::MAX as usize);
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be at least 1"));
    }
    require_commands(&kind, &[r.size.as_bytes()])?;
    let size = session.run(&[r.size.as_bytes(), key])?.int()?;
    let read = (r.read)(key, size, limit);
    require_commands(&kind, &[&read[0]])?;
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

async fn get_key(
    State(s): State<AppState>,
    parts: Parts,
    q: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let key = key_from_uri(&parts.uri)?;
    if let Some(r) = forward_key(&s, &parts, &key, b"").await? {
        return Ok(r);
    }
    wait_unpaused(&s.node, false).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    Ok(Json(read_key(
        &mut session,
        &view::node_id(&s.node),
        &key,
        q.limit,
    )?)
    .into_response())
}

fn parse_body(body: &[u8]) -> Result<Map<String, JsonValue>, ApiError> {
    match serde_json::from_slice::<JsonValue>(body) {
        Ok(JsonValue::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

async fn put_key(
    State(s): State<AppState>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let body = body_bytes(body)?;
    let key = key_from_uri(&parts.uri)?;
    if let Some(r) = forward_key(&s, &parts, &key, &body).await? {
        return Ok(r);
    }
    let cmds = write_commands(&key, &parse_body(&body)?)?;
    wait_unpaused(&s.node, true).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    session.transaction(&cmds)?;
    let view = read_key(&mut session, &view::node_id(&s.node), &key, None)?;
    let logged = session.logged();
    drop(session);
    logged.await;
    Ok(Json(view).into_response())
}

async fn patch_key(
    State(s): State<AppState>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let body = body_bytes(body)?;
    let key = key_from_uri(&parts.uri)?;
    if let Some(r) = forward_key(&s, &parts, &key, &body).await? {
        return Ok(r);
    }
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
    // Across slots in a cluster: Redis's refusal, before any check that would be routed to
    // the other key's owner (and answered with a redirection).
    if let Some(to) = &rename
        && s.node.cluster.is_some()
        && key_hash_slot(to) != key_hash_slot(&key)
    {
        return Err(ApiError::from_redis(
            "CROSSSLOT Keys in request don't hash to the same slot",
        ));
    }
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
    let view = read_key(&mut session, &view::node_id(&s.node), now, None)?;
    let logged = session.logged();
    drop(session);
    logged.await;
    Ok(Json(view).into_response())
}

fn key_exists() -> ApiError {
    ApiError::conflict(
        "key_exists",
        "rename_to names a key that already exists; delete it first",
    )
}

async fn delete_key(State(s): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    authorize_write(&s, &parts.headers)?;
    let key = key_from_uri(&parts.uri)?;
    if let Some(r) = forward_key(&s, &parts, &key, b"").await? {
        return Ok(r);
    }
    wait_unpaused(&s.node, true).await;
    let mut session = Session::open(&s.node, peer(&parts.extensions))?;
    let n = session.run(&[b"DEL", &key])?.int()?;
    let logged = session.logged();
    drop(session);
    logged.await;
    Ok(Json(serde_json::json!({ "deleted": n })).into_response())
}
