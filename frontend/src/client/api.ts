// The REST half of the server contract (docs/api.md). Plain functions over `fetch`, returning
// our own types: wire quirks (base64 flags, shapes per type) end here.

import { type Bin, binBytes, binToUrl, bytesToBase64, readBin } from "../lib/bytes";

export type KeyType = "string" | "hash" | "list" | "set" | "zset" | "stream" | "none" | string;

export interface NodeInfo {
  id: string;
  addr: string;
  httpAddr: string;
  version: string;
  role: string;
  uptimeS: number;
}

export interface NodeStats {
  opsPerSec: number;
  connectedClients: number;
  usedMemory: number;
  keys: number;
  keyspaceHits: number;
  keyspaceMisses: number;
  commandsProcessed: number;
}

export interface Info {
  node: NodeInfo;
  stats: NodeStats;
}

export interface ClusterNode {
  id: string;
  addr: string;
  httpAddr: string;
  role: string;
  state: "ok" | "pfail" | "fail" | string;
  configEpoch: number;
  slots: [number, number][];
  keys: number;
  usedMemory: number;
  opsPerSec: number;
  connectedClients: number;
  /** Since the node started. */
  keyspaceHits: number;
  keyspaceMisses: number;
  myself: boolean;
}

export interface SlotMove {
  slot: number;
  from: string;
  to: string;
  keysMoved: number;
}

export interface Cluster {
  state: string;
  mode: string;
  slotsAssigned: number;
  currentEpoch: number | null;
  nodes: ClusterNode[];
  moving: SlotMove[];
}

export interface KeySummary {
  key: Bin;
  type: KeyType;
  ttlMs: number;
  slot: number | null;
  node: string | null;
}

export interface ScanPage {
  cursor: string;
  keys: KeySummary[];
}

/**
 * One stream entry. `id` is `<ms>-<seq>` as read; when writing it may also be empty or `*` (the
 * node picks it), `<ms>` or `<ms>-*`, as XADD takes them. Fields keep the entry's order.
 */
export interface StreamEntry {
  id: string;
  fields: [Bin, Bin][];
}

export type KeyValue =
  | { type: "string"; value: Bin }
  | { type: "hash"; value: [Bin, Bin][] }
  | { type: "list"; value: Bin[] }
  | { type: "set"; value: Bin[] }
  | { type: "zset"; value: [Bin, number][] }
  | { type: "stream"; value: StreamEntry[] }
  | { type: "other"; value: string };

export interface KeyDetail extends KeySummary {
  encoding: string | null;
  size: number | null;
  truncated: boolean;
  data: KeyValue;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly node: string | null = null,
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;

const num = (v: unknown, fallback = 0): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);
const str = (v: unknown, fallback = ""): string => (typeof v === "string" ? v : fallback);
const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function parseInfo(raw: unknown): Info {
  const n = obj(obj(raw).node);
  const s = obj(obj(raw).stats);
  return {
    node: {
      id: str(n.id),
      addr: str(n.addr),
      httpAddr: str(n.http_addr),
      version: str(n.version),
      role: str(n.role, "master"),
      uptimeS: num(n.uptime_s),
    },
    stats: {
      opsPerSec: num(s.ops_per_sec),
      connectedClients: num(s.connected_clients),
      usedMemory: num(s.used_memory),
      keys: num(s.keys),
      keyspaceHits: num(s.keyspace_hits),
      keyspaceMisses: num(s.keyspace_misses),
      commandsProcessed: num(s.commands_processed),
    },
  };
}

export function parseClusterNode(raw: unknown): ClusterNode {
  const n = obj(raw);
  return {
    id: str(n.id),
    addr: str(n.addr),
    httpAddr: str(n.http_addr),
    role: str(n.role, "master"),
    state: str(n.state, "ok"),
    configEpoch: num(n.config_epoch),
    slots: arr(n.slots)
      .map((r) => arr(r))
      .filter((r) => typeof r[0] === "number")
      .map((r) => [num(r[0]), num(r[1], num(r[0]))] as [number, number]),
    keys: num(n.keys),
    usedMemory: num(n.used_memory),
    opsPerSec: num(n.ops_per_sec),
    connectedClients: num(n.connected_clients),
    keyspaceHits: num(n.keyspace_hits),
    keyspaceMisses: num(n.keyspace_misses),
    myself: n.myself === true,
  };
}

export function parseCluster(raw: unknown): Cluster {
  const c = obj(raw);
  return {
    state: str(c.state, "ok"),
    mode: str(c.mode, "standalone"),
    slotsAssigned: num(c.slots_assigned),
    currentEpoch: typeof c.current_epoch === "number" ? c.current_epoch : null,
    nodes: arr(c.nodes).map(parseClusterNode),
    moving: arr(c.moving).map((m) => {
      const o = obj(m);
      return { slot: num(o.slot), from: str(o.from), to: str(o.to), keysMoved: num(o.keys_moved) };
    }),
  };
}

export function parseKeySummary(raw: unknown): KeySummary {
  const k = obj(raw);
  return {
    key: readBin(k.key, k.key_b64),
    type: str(k.type, "none"),
    ttlMs: num(k.ttl_ms, -1),
    slot: typeof k.slot === "number" ? k.slot : null,
    node: typeof k.node === "string" ? k.node : null,
  };
}

export function parseScan(raw: unknown): ScanPage {
  const o = obj(raw);
  return { cursor: str(o.cursor, String(num(o.cursor))), keys: arr(o.keys).map(parseKeySummary) };
}

/** A zset score: a number, or "inf"/"-inf" (JSON has no infinity). */
export function readScore(v: unknown): number {
  if (typeof v === "number") return v;
  if (v === "inf" || v === "+inf") return Infinity;
  if (v === "-inf") return -Infinity;
  return Number(v);
}

function writeScore(n: number): number | string {
  return n === Infinity ? "inf" : n === -Infinity ? "-inf" : n;
}

export function parseKeyDetail(raw: unknown): KeyDetail {
  const k = obj(raw);
  const summary = parseKeySummary(raw);
  // One flag covers a whole aggregate: with value_b64 every field, item and member is base64.
  const b64 = k.value_b64 === true;
  const item = (v: unknown): Bin => readBin(v, b64);
  const pair = (p: unknown): [unknown, unknown] => {
    const a = arr(p);
    return [a[0], a[1]];
  };
  let data: KeyValue;
  switch (summary.type) {
    case "string":
      data = { type: "string", value: readBin(k.value, b64) };
      break;
    case "hash":
      data = { type: "hash", value: arr(k.value).map((p) => pair(p)).map(([f, v]) => [item(f), item(v)]) };
      break;
    case "list":
    case "set":
      data = { type: summary.type, value: arr(k.value).map(item) };
      break;
    case "zset":
      data = { type: "zset", value: arr(k.value).map((p) => pair(p)).map(([m, s]) => [item(m), readScore(s)]) };
      break;
    case "stream":
      // IDs are ASCII and never base64; value_b64 covers the fields and values.
      data = {
        type: "stream",
        value: arr(k.value).map((e) => ({
          id: str(obj(e).id),
          fields: arr(obj(e).fields).map((p) => pair(p)).map(([f, v]) => [item(f), item(v)]),
        })),
      };
      break;
    default:
      data = { type: "other", value: JSON.stringify(k.value ?? null) };
  }
  return {
    ...summary,
    encoding: typeof k.encoding === "string" ? k.encoding : null,
    size: typeof k.size === "number" ? k.size : null,
    truncated: k.truncated === true,
    data,
  };
}

/**
 * A value as the PUT body carries it. If any element is binary, the whole value goes as
 * base64 under one `value_b64` flag, as the contract has it.
 */
export function valueBody(v: KeyValue): { value: unknown; value_b64?: true } {
  const elements: Bin[] =
    v.type === "string"
      ? [v.value]
      : v.type === "hash"
        ? v.value.flat()
        : v.type === "zset"
          ? v.value.map(([m]) => m)
          : v.type === "stream"
            ? v.value.flatMap((e) => e.fields.flat())
            : v.type === "other"
              ? []
              : v.value;
  const b64 = elements.some((e) => e.b64);
  const enc = (e: Bin): string => (b64 && !e.b64 ? bytesToBase64(binBytes(e)) : e.text);
  const flag = b64 ? { value_b64: true as const } : {};
  switch (v.type) {
    case "string":
      return { value: enc(v.value), ...flag };
    case "hash":
      return { value: v.value.map(([f, x]) => [enc(f), enc(x)]), ...flag };
    case "list":
    case "set":
      return { value: v.value.map(enc), ...flag };
    case "zset":
      return { value: v.value.map(([m, score]) => [enc(m), writeScore(score)]), ...flag };
    case "stream":
      // No id (or "*"): the node picks one.
      return {
        value: v.value.map((e) => {
          const fields = e.fields.map(([f, x]) => [enc(f), enc(x)]);
          const id = e.id.trim();
          return id ? { id, fields } : { fields };
        }),
        ...flag,
      };
    default:
      return { value: null };
  }
}

export interface ApiOptions {
  /** Origin of the node to talk to; "" for the page's own. */
  base: string;
  token: string | null;
  fetch: typeof fetch;
}

export class Api {
  constructor(private readonly opts: ApiOptions) {}

  setToken(token: string | null) {
    this.opts.token = token;
  }

  get hasToken(): boolean {
    return !!this.opts.token;
  }

  private async call(path: string, init: RequestInit = {}): Promise<unknown> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (init.body) headers["Content-Type"] = "application/json";
    if (this.opts.token && init.method && init.method !== "GET") headers.Authorization = `Bearer ${this.opts.token}`;
    let response: Response;
    try {
      response = await this.opts.fetch(this.opts.base + path, { ...init, headers });
    } catch (e) {
      throw new ApiError(0, "unreachable", `node unreachable: ${e instanceof Error ? e.message : String(e)}`);
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const err = obj(obj(body).error);
      throw new ApiError(
        response.status,
        str(err.code, `http_${response.status}`),
        str(err.message, text.slice(0, 200) || response.statusText),
        typeof err.node === "string" ? err.node : null,
      );
    }
    return body;
  }

  async info(): Promise<Info> {
    return parseInfo(await this.call("/api/v1/info"));
  }

  async cluster(): Promise<Cluster> {
    return parseCluster(await this.call("/api/v1/cluster"));
  }

  async scan(match: string, cursor: string, count: number, type: string): Promise<ScanPage> {
    const q = new URLSearchParams({ match: match || "*", cursor, count: String(count) });
    if (type) q.set("type", type);
    return parseScan(await this.call(`/api/v1/keys?${q}`));
  }

  async getKey(key: Bin, limit?: number): Promise<KeyDetail> {
    const q = limit ? `?limit=${limit}` : "";
    return parseKeyDetail(await this.call(`/api/v1/keys/${binToUrl(key)}${q}`));
  }

  async putKey(key: Bin, value: KeyValue, ttlMs: number | null): Promise<KeyDetail> {
    const body = { type: value.type, ...valueBody(value), ...(ttlMs !== null && ttlMs > 0 ? { ttl_ms: ttlMs } : {}) };
    return parseKeyDetail(await this.call(`/api/v1/keys/${binToUrl(key)}`, { method: "PUT", body: JSON.stringify(body) }));
  }

  async patchKey(key: Bin, change: { renameTo?: Bin; ttlMs?: number | null }): Promise<KeyDetail> {
    const body: Json = {};
    if (change.renameTo) {
      body.rename_to = change.renameTo.text;
      if (change.renameTo.b64) body.rename_to_b64 = true;
    }
    if (change.ttlMs !== undefined) body.ttl_ms = change.ttlMs;
    return parseKeyDetail(await this.call(`/api/v1/keys/${binToUrl(key)}`, { method: "PATCH", body: JSON.stringify(body) }));
  }

  async deleteKey(key: Bin): Promise<number> {
    return num(obj(await this.call(`/api/v1/keys/${binToUrl(key)}`, { method: "DELETE" })).deleted);
  }
}
