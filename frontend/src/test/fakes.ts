// Test doubles for the one client module: a scripted fetch and a WebSocket the test drives.

import type { SocketLike } from "../client/feed";
import { Server } from "../client/server";

export class FakeSocket implements SocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  message(msg: object | string) {
    this.onmessage?.(new MessageEvent("message", { data: typeof msg === "string" ? msg : JSON.stringify(msg) }));
  }
  drop() {
    this.readyState = 3;
    this.onclose?.(new CloseEvent("close"));
  }
  static last(): FakeSocket {
    const s = FakeSocket.all[FakeSocket.all.length - 1];
    if (!s) throw new Error("no socket opened");
    return s;
  }
}

export type Handler = (method: string, url: URL, body: unknown) => [number, unknown] | undefined;

export function fakeFetch(handler: Handler) {
  const calls: { method: string; url: URL; body: unknown }[] = [];
  const fn = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input), "http://node.test");
    const method = init?.method ?? "GET";
    const body: unknown = typeof init?.body === "string" ? JSON.parse(init.body) : null;
    calls.push({ method, url, body });
    const [status, json] = handler(method, url, body) ?? [404, { error: { code: "not_found", message: "no route" } }];
    return new Response(JSON.stringify(json), { status, headers: { "content-type": "application/json" } });
  };
  return { fetch: fn as typeof fetch, calls };
}

export function fakeServer(handler: Handler) {
  FakeSocket.all = [];
  const { fetch, calls } = fakeFetch(handler);
  const server = new Server({ fetch, socket: (url) => new FakeSocket(url), location: { protocol: "http:", host: "node.test" }, pollMs: 60_000 });
  return { server, calls };
}

export const oneNodeCluster = {
  state: "ok",
  mode: "standalone",
  slots_assigned: 16384,
  nodes: [{ id: "n1", addr: "127.0.0.1:6379", http_addr: "127.0.0.1:8080", role: "master", state: "ok", config_epoch: 0, slots: [[0, 16383]], keys: 2, used_memory: 1000, ops_per_sec: 5, myself: true }],
  moving: [],
};
