// Deep links: the URL holds the view and what it shows (`/keys?match=user:*&type=hash&key=user:1`,
// `/live?match=order:*&event=set`), so a link or a reload lands on the same screen. Binary keys
// travel as `key64=<base64>`.

import { useCallback, useEffect, useState } from "react";
import type { Bin } from "./bytes";

export type View = "keys" | "live" | "cluster" | "metrics";
export const VIEWS: View[] = ["keys", "live", "cluster", "metrics"];

/**
 * Each view's path. The node serves its own endpoints beside the UI (`/metrics` is Prometheus
 * text, `/ws`, `/api`, `/healthz`, `/readyz`), so the metrics view lives at `/charts`.
 */
export const VIEW_PATHS: Record<View, string> = { keys: "/keys", live: "/live", cluster: "/cluster", metrics: "/charts" };

export interface Route {
  view: View;
  match: string;
  type: string;
  key: Bin | null;
  event: string;
  node: string;
}

export const defaultRoute: Route = { view: "keys", match: "*", type: "", key: null, event: "", node: "" };

export function parseRoute(pathname: string, search: string): Route {
  const first = `/${pathname.split("/").filter(Boolean)[0] ?? "keys"}`;
  const view = VIEWS.find((v) => VIEW_PATHS[v] === first) ?? "keys";
  const q = new URLSearchParams(search);
  const key64 = q.get("key64");
  const key = q.get("key");
  return {
    view,
    match: q.get("match") || "*",
    type: q.get("type") ?? "",
    key: key64 !== null ? { text: key64, b64: true } : key !== null ? { text: key, b64: false } : null,
    event: q.get("event") ?? "",
    node: q.get("node") ?? "",
  };
}

export function formatRoute(r: Route): string {
  const q = new URLSearchParams();
  if (r.view === "keys" || r.view === "live") {
    if (r.match && r.match !== "*") q.set("match", r.match);
  }
  if (r.view === "keys") {
    if (r.type) q.set("type", r.type);
    if (r.key) q.set(r.key.b64 ? "key64" : "key", r.key.text);
  }
  if (r.view === "live") {
    if (r.event) q.set("event", r.event);
    if (r.node) q.set("node", r.node);
  }
  const s = q.toString();
  return `${VIEW_PATHS[r.view]}${s ? `?${s}` : ""}`;
}

/** The route in the address bar, and a way to change it (pushing history unless `replace`). */
export function useRoute(): [Route, (change: Partial<Route>, replace?: boolean) => void] {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname, window.location.search));
  useEffect(() => {
    const onPop = () => setRoute(parseRoute(window.location.pathname, window.location.search));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const navigate = useCallback((change: Partial<Route>, replace = false) => {
    setRoute((current) => {
      const next = { ...current, ...change };
      const url = formatRoute(next);
      if (url !== window.location.pathname + window.location.search) {
        if (replace) window.history.replaceState(null, "", url);
        else window.history.pushState(null, "", url);
      }
      return next;
    });
  }, []);
  return [route, navigate];
}
