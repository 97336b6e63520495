// The live feed over `/ws` (docs/api.md "Live feed"): one WebSocket, its reconnects, the
// subscriptions to restore after each, and batching. Messages can arrive at 10,000 a second;
// React must not render per message, so events wait in a bounded queue and listeners get them in
// batches every `flushMs`. If the page cannot keep up the oldest queued events are dropped and
// counted, just as the server counts what it dropped for us (`lagged`).

import { type Bin, readBin } from "../lib/bytes";
import { type ClusterNode, parseClusterNode } from "./api";

export interface FeedEvent {
  /** Arrival order in this page; unique, for React keys. */
  seq: number;
  event: string;
  key: Bin;
  node: string;
  db: number;
  tsMs: number;
}

export interface ClusterUpdate {
  state: string;
  nodes: ClusterNode[];
}

export type FeedStatus = "connecting" | "open" | "reconnecting" | "stopped";

export interface FeedStats {
  status: FeedStatus;
  /** Events the server dropped for us (sum of `lagged.missed`). */
  missed: number;
  /** Events this page dropped because its queue was full. */
  droppedHere: number;
  received: number;
  /** Events per second over the last second. */
  rate: number;
  reconnects: number;
  lastError: string | null;
}

/** The part of the browser's WebSocket the feed uses, so tests can drive a fake one. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(): void;
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
}

export type SocketFactory = (url: string) => SocketLike;

export interface FeedOptions {
  url: string;
  socket?: SocketFactory;
  /** How often batches are handed to listeners. */
  flushMs?: number;
  /** Most events queued between flushes. */
  capacity?: number;
  /** Reconnect delays, the last repeated. */
  backoffMs?: number[];
  now?: () => number;
}

type Listener<T> = (value: T) => void;

const OPEN = 1;

export class Feed {
  private socket: SocketLike | null = null;
  private readonly patterns = new Map<string, number>();
  private queue: FeedEvent[] = [];
  private seq = 0;
  private attempt = 0;
  private flushTimer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly recent: { at: number; n: number }[] = [];
  private readonly eventListeners = new Set<Listener<FeedEvent[]>>();
  private readonly clusterListeners = new Set<Listener<ClusterUpdate>>();
  private readonly statsListeners = new Set<Listener<FeedStats>>();
  private readonly openListeners = new Set<() => void>();
  private stats: FeedStats = {
    status: "stopped",
    missed: 0,
    droppedHere: 0,
    received: 0,
    rate: 0,
    reconnects: 0,
    lastError: null,
  };
  private readonly flushMs: number;
  private readonly capacity: number;
  private readonly backoff: number[];
  private readonly now: () => number;
  private readonly makeSocket: SocketFactory;

  constructor(private readonly opts: FeedOptions) {
    this.flushMs = opts.flushMs ?? 100;
    this.capacity = opts.capacity ?? 20000;
    this.backoff = opts.backoffMs ?? [250, 500, 1000, 2000, 4000];
    this.now = opts.now ?? (() => Date.now());
    this.makeSocket = opts.socket ?? ((url) => new WebSocket(url));
  }

  start() {
    if (this.stats.status !== "stopped") return;
    this.flushTimer = setInterval(() => this.flush(), this.flushMs);
    this.connect();
  }

  stop() {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.flushTimer = null;
    this.reconnectTimer = null;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close();
    }
    this.setStats({ status: "stopped" });
  }

  /** Asks for events on keys matching `pattern` (every node's); returns the way to stop. */
  subscribe(pattern: string): () => void {
    const n = this.patterns.get(pattern) ?? 0;
    this.patterns.set(pattern, n + 1);
    if (n === 0) this.send({ op: "subscribe", pattern, scope: "cluster" });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.patterns.get(pattern) ?? 1) - 1;
      if (left > 0) {
        this.patterns.set(pattern, left);
      } else {
        this.patterns.delete(pattern);
        this.send({ op: "unsubscribe", pattern });
      }
    };
  }

  get subscriptions(): string[] {
    return [...this.patterns.keys()];
  }

  onEvents(l: Listener<FeedEvent[]>) {
    this.eventListeners.add(l);
    return () => void this.eventListeners.delete(l);
  }

  onCluster(l: Listener<ClusterUpdate>) {
    this.clusterListeners.add(l);
    return () => void this.clusterListeners.delete(l);
  }

  onStats(l: Listener<FeedStats>) {
    this.statsListeners.add(l);
    return () => void this.statsListeners.delete(l);
  }

  /** Called after every (re)connection: views refresh what they may have missed. */
  onOpen(l: () => void) {
    this.openListeners.add(l);
    return () => void this.openListeners.delete(l);
  }

  getStats(): FeedStats {
    return this.stats;
  }

  private send(msg: object) {
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(msg));
  }

  private connect() {
    this.setStats({ status: this.stats.reconnects > 0 || this.attempt > 0 ? "reconnecting" : "connecting" });
    let socket: SocketLike;
    try {
      socket = this.makeSocket(this.opts.url);
    } catch (e) {
      this.setStats({ lastError: String(e) });
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      const reconnected = this.attempt > 0 || this.stats.reconnects > 0 || this.stats.lastError !== null;
      this.attempt = 0;
      for (const pattern of this.patterns.keys()) this.send({ op: "subscribe", pattern, scope: "cluster" });
      this.setStats({ status: "open", lastError: null, reconnects: this.stats.reconnects + (reconnected ? 1 : 0) });
      for (const l of this.openListeners) l();
    };
    socket.onmessage = (ev) => this.receive(ev.data);
    socket.onerror = () => this.setStats({ lastError: "connection error" });
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.setStats({ lastError: this.stats.lastError ?? "connection closed" });
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect() {
    const delay = this.backoff[Math.min(this.attempt, this.backoff.length - 1)] ?? 1000;
    this.attempt++;
    this.setStats({ status: "reconnecting" });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  /** One server message. Public for tests and for a page-level fake. */
  receive(data: unknown) {
    if (typeof data !== "string") return;
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(data);
      if (!parsed || typeof parsed !== "object") return;
      msg = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    switch (msg.type) {
      case "event": {
        this.stats.received++;
        if (this.queue.length >= this.capacity) {
          this.queue.shift();
          this.stats.droppedHere++;
        }
        this.queue.push({
          seq: ++this.seq,
          event: typeof msg.event === "string" ? msg.event : "?",
          key: readBin(msg.key, msg.key_b64),
          node: typeof msg.node === "string" ? msg.node : "",
          db: typeof msg.db === "number" ? msg.db : 0,
          tsMs: typeof msg.ts_ms === "number" ? msg.ts_ms : this.now(),
        });
        break;
      }
      case "lagged":
        this.setStats({ missed: this.stats.missed + (typeof msg.missed === "number" ? msg.missed : 0) });
        break;
      case "cluster": {
        const update: ClusterUpdate = {
          state: typeof msg.state === "string" ? msg.state : "ok",
          nodes: Array.isArray(msg.nodes) ? msg.nodes.map(parseClusterNode) : [],
        };
        for (const l of this.clusterListeners) l(update);
        break;
      }
      case "error":
        this.setStats({ lastError: typeof msg.message === "string" ? msg.message : "server error" });
        break;
      default:
        break;
    }
  }

  /** Hands queued events to listeners in one batch and updates the rate. */
  flush() {
    const batch = this.queue;
    this.queue = [];
    const now = this.now();
    this.recent.push({ at: now, n: batch.length });
    while (this.recent.length > 0 && (this.recent[0]?.at ?? now) <= now - 1000) this.recent.shift();
    const rate = this.recent.reduce((sum, r) => sum + r.n, 0);
    if (rate !== this.stats.rate || batch.length > 0) this.setStats({ rate });
    if (batch.length === 0) return;
    for (const l of this.eventListeners) l(batch);
  }

  private setStats(change: Partial<FeedStats>) {
    this.stats = { ...this.stats, ...change };
    for (const l of this.statsListeners) l(this.stats);
  }
}

/** `ws://host/ws` for a page served over http, `wss://` over https. */
export function feedUrl(base: string, location: { protocol: string; host: string }): string {
  if (base) return base.replace(/^http/, "ws") + "/ws";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
