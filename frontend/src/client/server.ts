// The one place that talks to the node: the REST API, the live feed's WebSocket (with its
// reconnects) and the cluster view that both keep up to date. Components read it through the
// hooks at the bottom and never open sockets or poll on their own.

import { createContext, useContext, useEffect, useState, useSyncExternalStore } from "react";
import { Api, type Cluster, type Info } from "./api";
import { Feed, type FeedEvent, type FeedStats, type SocketFactory, feedUrl } from "./feed";

export interface ClusterState {
  cluster: Cluster | null;
  /** Why the last poll failed; null while the node answers. */
  error: string | null;
  updatedAt: number;
}

export interface ServerOptions {
  base?: string;
  fetch?: typeof fetch;
  socket?: SocketFactory;
  location?: { protocol: string; host: string };
  pollMs?: number;
  token?: string | null;
}

export class Server {
  readonly api: Api;
  readonly feed: Feed;
  private clusterState: ClusterState = { cluster: null, error: null, updatedAt: 0 };
  private readonly clusterListeners = new Set<() => void>();
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private readonly pollMs: number;
  private started = false;

  constructor(opts: ServerOptions = {}) {
    const base = opts.base ?? "";
    this.api = new Api({ base, token: opts.token ?? null, fetch: opts.fetch ?? ((...a) => fetch(...a)) });
    this.feed = new Feed({
      url: feedUrl(base, opts.location ?? { protocol: "http:", host: "localhost" }),
      ...(opts.socket ? { socket: opts.socket } : {}),
    });
    this.pollMs = opts.pollMs ?? 2000;
    this.feed.onCluster((update) => {
      const prev = this.clusterState.cluster;
      this.setCluster({
        cluster: prev
          ? { ...prev, state: update.state, nodes: update.nodes.length ? update.nodes : prev.nodes }
          : null,
      });
      // A membership or slot change: get the whole picture (moving slots, counts) at once.
      void this.refreshCluster();
    });
    // After a restart of the node the poll may have failed: catch up as soon as the feed is back.
    this.feed.onOpen(() => void this.refreshCluster());
  }

  start() {
    if (this.started) return;
    this.started = true;
    this.feed.start();
    void this.refreshCluster();
    this.pollTimer = setInterval(() => void this.refreshCluster(), this.pollMs);
  }

  stop() {
    this.started = false;
    this.feed.stop();
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  async refreshCluster() {
    try {
      const cluster = await this.api.cluster();
      this.setCluster({ cluster, error: null, updatedAt: Date.now() });
    } catch (e) {
      this.setCluster({ error: e instanceof Error ? e.message : String(e) });
    }
  }

  getCluster = (): ClusterState => this.clusterState;

  subscribeCluster = (l: () => void) => {
    this.clusterListeners.add(l);
    return () => void this.clusterListeners.delete(l);
  };

  private setCluster(change: Partial<ClusterState>) {
    this.clusterState = { ...this.clusterState, ...change };
    for (const l of this.clusterListeners) l();
  }
}

export const ServerContext = createContext<Server | null>(null);

export function useServer(): Server {
  const server = useContext(ServerContext);
  if (!server) throw new Error("useServer outside <ServerContext.Provider>");
  return server;
}

export function useCluster(): ClusterState {
  const server = useServer();
  return useSyncExternalStore(server.subscribeCluster, server.getCluster);
}

export function useFeedStats(): FeedStats {
  const { feed } = useServer();
  return useSyncExternalStore(
    (l) => feed.onStats(l),
    () => feed.getStats(),
  );
}

/**
 * Event batches for keys matching `pattern`, for as long as the component is mounted; the
 * subscription is shared with other views asking for the same pattern.
 */
export function useFeedEvents(pattern: string, onBatch: (batch: FeedEvent[]) => void) {
  const { feed } = useServer();
  const [handler] = useState(() => ({ current: onBatch }));
  handler.current = onBatch;
  useEffect(() => {
    const unsubscribe = feed.subscribe(pattern || "*");
    const stop = feed.onEvents((batch) => handler.current(batch));
    return () => {
      stop();
      unsubscribe();
    };
  }, [feed, pattern, handler]);
}

/** Polls this node's `/api/v1/info`; keeps the last `keep` samples. */
export function useInfoSamples(everyMs: number, keep: number): { samples: InfoSample[]; error: string | null } {
  const { api } = useServer();
  const [state, setState] = useState<{ samples: InfoSample[]; error: string | null }>({ samples: [], error: null });
  useEffect(() => {
    let alive = true;
    const tick = async () => {
      try {
        const info = await api.info();
        if (!alive) return;
        setState((s) => ({ samples: [...s.samples, { at: Date.now(), info }].slice(-keep), error: null }));
      } catch (e) {
        if (alive) setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), everyMs);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [api, everyMs, keep]);
  return state;
}

export interface InfoSample {
  at: number;
  info: Info;
}
