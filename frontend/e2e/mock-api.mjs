// A stand-in for the node's /api/v1 and /ws (docs/api.md), for browser runs against a node that
// does not serve the API yet. Three fake nodes, keys of every type (binary, hostile and huge
// ones among them) and a writer that changes values as clients would. Installed into a
// Playwright page with `installMock(page)`; `cluster.write(...)` plays an outside client.

const SLOTS = 16384;
const MANY = 1_000_000;
const b64 = (s) => Buffer.from(s, "latin1").toString("base64");

function crc16(buf) {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function slotOf(key) {
  const buf = Buffer.from(key, "latin1");
  const open = buf.indexOf(0x7b);
  if (open >= 0) {
    const close = buf.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(buf.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(buf) % SLOTS;
}

function globToRegExp(glob) {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += "[" + glob.slice(i + 1, end).replace(/^\^/, "^").replace(/\\/g, "\\\\") + "]";
        i = end;
      }
    } else if (c === "\\" && i + 1 < glob.length) re += "\\" + glob[++i];
    else re += c.replace(/[.+^${}()|\]\\/]/g, "\\$&");
  }
  return new RegExp("^" + re + "$");
}

const isUtf8 = (s) => Buffer.from(Buffer.from(s, "latin1").toString("utf8"), "utf8").equals(Buffer.from(s, "latin1"));

/** Bytes (a latin1 string) as the API sends them. */
function wire(s, field) {
  if (isUtf8(s)) return { [field]: Buffer.from(s, "latin1").toString("utf8") };
  return { [field]: b64(s), [`${field}_b64`]: true };
}
/** Text from a request body: base64 when the value's one `value_b64` flag says so. */
const fromWire = (v, isB64) => (isB64 ? Buffer.from(v, "base64").toString("latin1") : Buffer.from(v, "utf8").toString("latin1"));

/** A stream body's entries, with IDs for those that had none (the node's clock, as XADD *). */
function streamFromWire(entries, isB64) {
  let last = [0, 0];
  return entries.map((e) => {
    let id = e.id && e.id !== "*" ? e.id : `${Date.now()}-*`;
    const [ms, seq = "0"] = id.split("-");
    const m = Math.max(Number(ms), last[0]);
    last = seq === "*" ? (m === last[0] ? [m, last[1] + 1] : [m, 0]) : [Number(ms), Number(seq)];
    id = `${last[0]}-${last[1]}`;
    return { id, fields: e.fields.map(([f, v]) => [fromWire(f, isB64), fromWire(v, isB64)]) };
  });
}

export class MockCluster {
  constructor() {
    this.nodes = [
      { id: "a1f3c9d2e8b7a6f5", addr: "127.0.0.1:7001", http_addr: "127.0.0.1:8001", slots: [[0, 5460]] },
      { id: "b2e4d0a1c3f5e7d9", addr: "127.0.0.1:7002", http_addr: "127.0.0.1:8002", slots: [[5461, 10922]] },
      { id: "c3d5e1b2a4c6e8f0", addr: "127.0.0.1:7003", http_addr: "127.0.0.1:8003", slots: [[10923, 16383]] },
    ].map((n, i) => ({ ...n, role: "master", state: "ok", config_epoch: i + 1, used_memory: 3e6 + i * 1e6, ops_per_sec: 0, myself: i === 0 }));
    this.moving = [{ slot: 5461, from: this.nodes[0].id, to: this.nodes[1].id, keys_moved: 3 }];
    this.keys = new Map(); // latin1 key -> {type, value, expireAt}
    this.sockets = new Set();
    this.ops = 0;
    this.hits = 0;
    this.misses = 0;
    const now = Date.now();
    for (let i = 1; i <= 300; i++) this.keys.set(`user:${i}`, { type: "string", value: `{"name":"user ${i}","visits":${i * 7}}` });
    for (let i = 1; i <= 40; i++) this.keys.set(`session:${i}`, { type: "hash", value: [["user", `user:${i}`], ["ip", `10.0.0.${i}`]], expireAt: now + 3600e3 });
    this.keys.set("counter:visits", { type: "string", value: "1000" });
    this.keys.set("queue:jobs", { type: "list", value: ["resize:1", "resize:2", "email:7"] });
    this.keys.set("tags:popular", { type: "set", value: ["redis", "rust", "cluster"] });
    this.keys.set("leaderboard", { type: "zset", value: [["alice", 320], ["bob", 250], ["carol", 99.5]] });
    // Streams: entries {id, fields: [[field, value], ...]} in ID order.
    this.keys.set("events:orders", {
      type: "stream",
      value: Array.from({ length: 5 }, (_, i) => ({ id: `${now - 5000 + i * 1000}-0`, fields: [["order", `o:${i + 1}`], ["status", i % 2 ? "paid" : "new"]] })),
    });
    this.keys.set("hostile:html", { type: "string", value: Buffer.from('<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>\u202eevil', "utf8").toString("latin1") });
    this.keys.set("bin:\x00\xff\xfe", { type: "string", value: "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" });
    this.keys.set("huge:string", { type: "string", value: "x".repeat(3 * 1024 * 1024) });
    this.keys.set("huge:hash", { type: "hash", value: Array.from({ length: 100000 }, (_, i) => [`field:${i}`, `value ${i}`]) });
    this.timer = null;
  }

  nodeOf(key) {
    const slot = slotOf(key);
    return this.nodes.find((n) => n.slots.some(([a, b]) => slot >= a && slot <= b)) ?? this.nodes[0];
  }

  ttl(k) {
    return k.expireAt ? Math.max(0, k.expireAt - Date.now()) : -1;
  }

  summary(key) {
    const k = this.keys.get(key);
    return { ...wire(key, "key"), type: k.type, ttl_ms: this.ttl(k), slot: slotOf(key), node: this.nodeOf(key).id };
  }

  detail(key, limit) {
    const k = this.keys.get(key);
    const out = { ...this.summary(key), encoding: k.type === "string" ? "raw" : k.type === "stream" ? "stream" : "hashtable" };
    if (k.type === "string") {
      const max = limit ? Math.min(limit * 1024, 1 << 20) : 1 << 20;
      out.size = k.value.length;
      Object.assign(out, wire(k.value.slice(0, max), "value"));
      out.truncated = k.value.length > max;
    } else {
      const max = limit || 1000;
      out.size = k.value.length;
      out.truncated = k.value.length > max;
      const items = k.value.slice(0, max);
      // One flag for the whole aggregate: if any element is not UTF-8, all go as base64.
      const texts =
        k.type === "hash" ? items.flat() : k.type === "zset" ? items.map(([m]) => m) : k.type === "stream" ? items.flatMap((e) => e.fields.flat()) : items;
      const asB64 = texts.some((t) => !isUtf8(t));
      const enc = (t) => (asB64 ? b64(t) : Buffer.from(t, "latin1").toString("utf8"));
      if (asB64) out.value_b64 = true;
      out.value =
        k.type === "hash" ? items.map(([f, v]) => [enc(f), enc(v)])
        : k.type === "zset" ? items.map(([m, s]) => [enc(m), s])
        : k.type === "stream" ? items.map((e) => ({ id: e.id, fields: e.fields.map(([f, v]) => [enc(f), enc(v)]) }))
        : items.map(enc);
    }
    return out;
  }

  /** A change made by an outside client (redis-cli in the real test). */
  write(key, value, event = "set") {
    this.ops++;
    if (event === "del") this.keys.delete(key);
    else this.keys.set(key, { type: "string", value });
    this.publish(event, key);
  }

  publish(event, key) {
    const msg = JSON.stringify({ type: "event", event, ...wire(key, "key"), db: 0, node: this.nodeOf(key).id, ts_ms: Date.now() });
    for (const s of this.sockets) if (s.patterns.some((p) => p.test(key))) s.ws.send(msg);
  }

  lagged(missed) {
    for (const s of this.sockets) s.ws.send(JSON.stringify({ type: "lagged", missed }));
  }

  /** Values change as clients write: the first screen is live. */
  startWriter() {
    let n = 0;
    this.timer = setInterval(() => {
      n++;
      const counter = this.keys.get("counter:visits");
      this.write("counter:visits", String(Number(counter?.value ?? 0) + 1));
      this.write(`user:${(n % 12) + 1}`, `{"name":"user ${(n % 12) + 1}","visits":${n}}`);
    }, 150);
  }

  stop() {
    clearInterval(this.timer);
  }

  handle(method, url, body) {
    const u = new URL(url);
    const path = u.pathname;
    if (path === "/api/v1/info") {
      const hits = (this.hits += 40 + Math.round(Math.random() * 20));
      const misses = (this.misses += 5 + Math.round(Math.random() * 10));
      return [200, {
        node: { id: this.nodes[0].id, addr: this.nodes[0].addr, http_addr: this.nodes[0].http_addr, version: "7.0.15", role: "master", uptime_s: 42 },
        stats: { ops_per_sec: 800 + Math.round(Math.random() * 400), connected_clients: 3 + (this.ops % 4), used_memory: 4e6 + this.keys.size * 120 + (this.ops % 50) * 1e4, keys: this.keys.size, keyspace_hits: hits, keyspace_misses: misses, commands_processed: this.ops },
      }];
    }
    if (path === "/api/v1/cluster") {
      const counts = new Map(this.nodes.map((n) => [n.id, 0]));
      for (const key of this.keys.keys()) counts.set(this.nodeOf(key).id, counts.get(this.nodeOf(key).id) + 1);
      const failed = this.nodes.some((n) => n.state === "fail");
      return [200, {
        state: failed ? "fail" : "ok", mode: "auto", slots_assigned: SLOTS, current_epoch: 3,
        nodes: this.nodes.map((n) => ({ ...n, keys: counts.get(n.id), ops_per_sec: n.state === "fail" ? 0 : 300 + Math.round(Math.random() * 200) })),
        moving: this.moving,
      }];
    }
    if (path === "/api/v1/keys" && (u.searchParams.get("match") ?? "").startsWith("many:")) {
      // A million keys that exist only as numbers, served 50,000 per page (COUNT is a hint).
      const start = Number(u.searchParams.get("cursor") || 0);
      const end = Math.min(MANY, start + 50_000);
      const keys = [];
      for (let i = start; i < end; i++) keys.push({ key: `many:${i}`, type: "string", ttl_ms: -1, slot: i % SLOTS, node: this.nodes[i % 3].id });
      return [200, { cursor: end >= MANY ? "0" : String(end), keys }];
    }
    if (path === "/api/v1/keys") {
      const re = globToRegExp(u.searchParams.get("match") || "*");
      const type = u.searchParams.get("type") || "";
      const count = Number(u.searchParams.get("count") || 100);
      const all = [...this.keys.keys()].sort();
      const start = Number(u.searchParams.get("cursor") || 0);
      const page = all.slice(start, start + count).filter((k) => re.test(k) && (!type || this.keys.get(k).type === type));
      const next = start + count >= all.length ? "0" : String(start + count);
      return [200, { cursor: next, keys: page.map((k) => this.summary(k)) }];
    }
    const m = path.match(/^\/api\/v1\/keys\/(.+)$/);
    if (m) {
      // Percent-encoded bytes, one latin1 character each, as the keyspace holds them.
      const k = unescape(m[1]);
      if (/^many:\d+$/.test(k) && method === "GET") {
        return [200, { key: k, type: "string", ttl_ms: -1, slot: slotOf(k), node: this.nodeOf(k).id, size: 8, value: `value of ${k} @${this.ops}`, truncated: false }];
      }
      if (method === "GET") {
        if (!this.keys.has(k)) return [404, { error: { code: "not_found", message: "no such key" } }];
        return [200, this.detail(k, Number(u.searchParams.get("limit") || 0))];
      }
      if (method === "DELETE") {
        const had = this.keys.delete(k);
        if (had) this.publish("del", k);
        return [200, { deleted: had ? 1 : 0 }];
      }
      if (method === "PUT") {
        const b = body.value_b64 === true;
        const value = body.type === "string" ? fromWire(body.value, b)
          : body.type === "hash" ? body.value.map(([f, v]) => [fromWire(f, b), fromWire(v, b)])
          : body.type === "zset" ? body.value.map(([mm, s]) => [fromWire(mm, b), s])
          : body.type === "stream" ? streamFromWire(body.value, b)
          : body.value.map((x) => fromWire(x, b));
        this.keys.set(k, { type: body.type, value, expireAt: body.ttl_ms ? Date.now() + body.ttl_ms : undefined });
        this.publish(body.type === "string" ? "set" : body.type === "hash" ? "hset" : body.type === "list" ? "rpush" : body.type === "set" ? "sadd" : body.type === "stream" ? "xadd" : "zadd", k);
        return [200, this.detail(k)];
      }
      if (method === "PATCH") {
        if (!this.keys.has(k)) return [404, { error: { code: "not_found", message: "no such key" } }];
        let name = k;
        if (body.rename_to !== undefined) {
          name = fromWire(body.rename_to, body.rename_to_b64 === true);
          this.keys.set(name, this.keys.get(k));
          this.keys.delete(k);
          this.publish("rename_from", k);
          this.publish("rename_to", name);
        }
        if (body.ttl_ms !== undefined) {
          this.keys.get(name).expireAt = body.ttl_ms === null ? undefined : Date.now() + body.ttl_ms;
          this.publish(body.ttl_ms === null ? "persist" : "expire", name);
        }
        return [200, this.detail(name)];
      }
    }
    return [404, { error: { code: "not_found", message: `no route ${method} ${path}` } }];
  }
}

/** Routes the page's /api/v1 and /ws to `cluster`. */
export async function installMock(page, cluster) {
  await page.route(/\/api\/v1\//, async (route) => {
    const req = route.request();
    let body = null;
    try {
      body = req.postDataJSON();
    } catch {
      body = null;
    }
    const [status, json] = cluster.handle(req.method(), req.url(), body);
    await route.fulfill({ status, contentType: "application/json", body: JSON.stringify(json) });
  });
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const sock = { ws, patterns: [] };
    cluster.sockets.add(sock);
    ws.onMessage((raw) => {
      const msg = JSON.parse(String(raw));
      if (msg.op === "subscribe") sock.patterns.push(Object.assign(globToRegExp(msg.pattern), { source_glob: msg.pattern }));
      if (msg.op === "unsubscribe") sock.patterns = sock.patterns.filter((p) => p.source_glob !== msg.pattern);
    });
    ws.onClose(() => cluster.sockets.delete(sock));
  });
}
