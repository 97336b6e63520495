// The page: a header with the views, the connection's state and the theme switch; the view the
// URL names below it. Keys 1–4 switch views when no field has focus.

import { useEffect, useState } from "react";
import { useCluster, useFeedStats } from "./client/server";
import { ClusterView } from "./components/ClusterView";
import { KeyBrowser } from "./components/KeyBrowser";
import { LiveFeed } from "./components/LiveFeed";
import { MetricsView } from "./components/MetricsView";
import { VIEWS, VIEW_PATHS, type View, useRoute } from "./lib/route";

const TITLES: Record<View, string> = { keys: "Keys", live: "Live", cluster: "Cluster", metrics: "Metrics" };

type Theme = "light" | "dark" | "auto";

export function App() {
  const [route, navigate] = useRoute();
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem("reredis.theme") as Theme | null) ?? "auto");

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("reredis.theme", theme);
  }, [theme]);

  useEffect(() => {
    document.title = `${TITLES[route.view]} · Reredis`;
  }, [route.view]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const view = VIEWS[Number(e.key) - 1];
      if (view) navigate({ view });
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [navigate]);

  return (
    <div className="app">
      <header className="top">
        <a className="brand" href="/keys" onClick={(e) => { e.preventDefault(); navigate({ view: "keys" }); }}>
          Reredis
        </a>
        <nav aria-label="views">
          {VIEWS.map((v, i) => (
            <a
              key={v}
              href={VIEW_PATHS[v]}
              aria-current={route.view === v ? "page" : undefined}
              title={`${TITLES[v]} (${i + 1})`}
              onClick={(e) => {
                e.preventDefault();
                navigate({ view: v });
              }}
            >
              {TITLES[v]}
            </a>
          ))}
        </nav>
        <ConnectionBadge />
        <button
          type="button"
          className="theme"
          aria-label={`theme: ${theme}`}
          title="Light / dark / follow the system"
          onClick={() => setTheme((t) => (t === "auto" ? "dark" : t === "dark" ? "light" : "auto"))}
        >
          {theme === "dark" ? "☾" : theme === "light" ? "☀" : "◐"}
        </button>
      </header>
      <main>
        {route.view === "keys" && <KeyBrowser route={route} navigate={navigate} />}
        {route.view === "live" && <LiveFeed route={route} navigate={navigate} />}
        {route.view === "cluster" && <ClusterView />}
        {route.view === "metrics" && <MetricsView />}
      </main>
    </div>
  );
}

function ConnectionBadge() {
  const feed = useFeedStats();
  const { cluster, error } = useCluster();
  const me = cluster?.nodes.find((n) => n.myself);
  const ok = feed.status === "open" && !error;
  const text = ok ? "live" : feed.status === "open" ? "API unreachable" : feed.status;
  return (
    <span className={`conn ${ok ? "ok" : "bad"}`} role="status" title={feed.lastError ?? error ?? ""}>
      <i /> {text}
      {me && <span className="muted"> · {me.addr}</span>}
    </span>
  );
}
