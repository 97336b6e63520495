// The first screen: the cluster's keys with their values, changing live. Pattern and type
// filters page through the whole cluster with SCAN cursors; the list is virtualised, so a
// million keys scroll like twenty; values are fetched only for the rows on screen, and rows the
// live feed reports as changed are refetched and highlighted.

import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import { ApiError, type KeyDetail, type KeySummary } from "../client/api";
import { useCluster, useServer, useFeedEvents } from "../client/server";
import type { FeedEvent } from "../client/feed";
import { type Bin, base64ToBytes, binId, formatTtl, preview } from "../lib/bytes";
import { globMatch } from "../lib/glob";
import { KeyList, type KeyRow } from "../lib/keylist";
import type { Route } from "../lib/route";
import { slotOwners } from "../lib/slots";
import { KeyPanel, shortId } from "./KeyPanel";
import { NewKeyForm } from "./NewKeyForm";
import { KeyName } from "./SafeText";
import { VirtualList } from "./VirtualList";

const PAGE = 500;
const ROW = 30;
const REFETCH_MS = 500;
const SETTLE_MS = 120;
const FLUSH = new Set(["flushdb", "flushall"]);
const TYPES = ["", "string", "hash", "list", "set", "zset", "stream"];

interface Props {
  route: Route;
  navigate: (change: Partial<Route>, replace?: boolean) => void;
}

/** The key as Redis's glob sees it: bytes, one char each. */
export function keyForGlob(key: Bin): string {
  return key.b64 ? String.fromCharCode(...base64ToBytes(key.text)) : key.text;
}

export function valuePreview(d: KeyDetail): string {
  switch (d.data.type) {
    case "string":
      return preview(d.data.value, 200);
    case "hash":
      return d.data.value.slice(0, 5).map(([f, v]) => `${preview(f, 30)}=${preview(v, 40)}`).join("  ");
    case "list":
    case "set":
      return d.data.value.slice(0, 8).map((x) => preview(x, 40)).join(", ");
    case "zset":
      return d.data.value.slice(0, 6).map(([m, s]) => `${preview(m, 30)}:${s}`).join("  ");
    case "stream":
      return d.data.value
        .slice(0, 4)
        .map((e) => `${e.id} ${e.fields.slice(0, 4).map(([f, v]) => `${preview(f, 20)}=${preview(v, 30)}`).join(" ")}`)
        .join("  ");
    default:
      return d.data.value.slice(0, 200);
  }
}

export function KeyBrowser({ route, navigate }: Props) {
  const { api, feed } = useServer();
  // The rows live in a mutable KeyList (a million keys are not copied per change); `version`
  // re-renders after each change.
  const [list] = useState(() => new KeyList());
  const [version, bump] = useReducer((n: number) => n + 1, 0);
  // A key's node is its slot's owner in the latest cluster view (the node that listed it until
  // its slot is known), so keys moving with their slots show where they went.
  const nodes = useCluster().cluster?.nodes;
  const owners = useMemo(() => (nodes ? slotOwners(nodes) : null), [nodes]);
  const nodeOf = (r: KeyRow) => (owners && r.slot !== null ? owners[r.slot] : undefined) ?? r.node;
  const [cursor, setCursor] = useState<string>("0");
  const [done, setDone] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Value previews and change times, by key id: mutable maps (thousands of entries are not
  // copied per update); `bump` re-renders.
  const previews = useRef(new Map<string, string>()).current;
  const changedAt = useRef(new Map<string, number>()).current;
  const [selectedVersion, setSelectedVersion] = useState(0);
  const [creating, setCreating] = useState(false);
  const [patternDraft, setPatternDraft] = useState(route.match);
  const generation = useRef(0);
  const inflight = useRef(new Set<string>());
  // Rows the feed reported as changed: refetched when on screen, old preview shown meanwhile.
  const stale = useRef(new Set<string>());
  const filterInput = useRef<HTMLInputElement>(null);

  useEffect(() => setPatternDraft(route.match), [route.match]);

  const loadPage = useCallback(
    async (from: string, reset: boolean) => {
      const gen = reset ? ++generation.current : generation.current;
      setLoading(true);
      try {
        let next = from;
        let found: KeySummary[] = [];
        // SCAN may answer empty pages while it walks; keep going a bounded number of times.
        for (let i = 0; i < 20 && found.length < 50; i++) {
          const page = await api.scan(route.match, next, PAGE, route.type);
          found = found.concat(page.keys);
          next = page.cursor;
          if (next === "0") break;
        }
        if (gen !== generation.current) return;
        if (reset) list.clear();
        list.appendScanned(found);
        bump();
        setCursor(next);
        setDone(next === "0");
        setError(null);
      } catch (e) {
        if (gen === generation.current) setError(e instanceof ApiError ? e.message : String(e));
      } finally {
        if (gen === generation.current) setLoading(false);
      }
    },
    [api, route.match, route.type, list],
  );

  useEffect(() => {
    list.clear();
    bump();
    previews.clear();
    setDone(false);
    void loadPage("0", true);
  }, [loadPage]);

  // After the feed reconnects (the node restarted) the list may be stale: rescan from the start.
  useEffect(
    () =>
      feed.onOpen(() => {
        if (feed.getStats().reconnects === 0) return;
        previews.clear();
        void loadPage("0", true);
      }),
    [feed, loadPage],
  );

  const fetchPreviews = useCallback(
    async (keys: Bin[]) => {
      const todo = keys.filter((k) => !inflight.current.has(binId(k)));
      for (const k of todo) inflight.current.add(binId(k));
      const results = await Promise.all(
        todo.map(async (k) => {
          try {
            // `limit` counts bytes for strings and elements for the rest: enough for one line.
            const type = list.get(binId(k))?.type;
            const d = await api.getKey(k, type === "string" || type === "…" || !type ? 256 : 16);
            return [binId(k), valuePreview(d), d] as const;
          } catch (e) {
            return [binId(k), e instanceof ApiError && e.status === 404 ? "(deleted)" : "…", null] as const;
          } finally {
            inflight.current.delete(binId(k));
          }
        }),
      );
      if (previews.size > 20_000) previews.clear();
      for (const [id, text] of results) previews.set(id, text);
      // The preview also tells type and TTL of keys first seen in the feed.
      for (const [id, , d] of results) if (d) list.update(id, { type: d.type, ttlMs: d.ttlMs, slot: d.slot, node: d.node });
      bump();
    },
    [api, list],
  );

  // Values are fetched for the rows on screen once scrolling settles (a fling through a million
  // keys asks for nothing on the way), and a row that changes many times a second is refetched
  // at most every REFETCH_MS.
  const fetchedAt = useRef(new Map<string, number>());
  const range = useRef<[number, number]>([0, 0]);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const refreshVisible = useCallback(() => {
    timer.current = null;
    const now = Date.now();
    const [first, last] = range.current;
    const missing: KeyRow[] = [];
    for (let i = first; i < last; i++) {
      const r = list.at(i);
      if (r && !r.gone && (!previews.has(binId(r.key)) || stale.current.has(binId(r.key)))) missing.push(r);
    }
    const want = missing.filter((r) => now - (fetchedAt.current.get(binId(r.key)) ?? 0) >= REFETCH_MS);
    if (fetchedAt.current.size > 10000) fetchedAt.current.clear();
    for (const r of want) {
      fetchedAt.current.set(binId(r.key), now);
      stale.current.delete(binId(r.key));
    }
    if (want.length) void fetchPreviews(want.map((r) => r.key));
    if (want.length < missing.length) timer.current = setTimeout(refreshVisible, REFETCH_MS);
  }, [list, previews, fetchPreviews]);
  const scheduleRefresh = useCallback(
    (delay: number) => {
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(refreshVisible, delay);
    },
    [refreshVisible],
  );
  useEffect(() => () => void (timer.current && clearTimeout(timer.current)), []);
  const onRange = useCallback(
    (first: number, last: number) => {
      const moved = range.current[0] !== first || range.current[1] !== last;
      range.current = [first, last];
      scheduleRefresh(moved ? SETTLE_MS : 0);
    },
    // `version`: rows arrived or changed under the same range.
    [scheduleRefresh, version],
  );

  const selectedId = route.key ? binId(route.key) : null;

  const onEvents = useCallback(
    (batch: FeedEvent[]) => {
      // flushdb/flushall (key "") reach every subscriber and concern every pattern.
      const relevant = batch.filter((e) => FLUSH.has(e.event) || globMatch(route.match || "*", keyForGlob(e.key)));
      if (!relevant.length) return;
      const now = Date.now();
      const last = new Map<string, FeedEvent>();
      for (const e of relevant) if (!FLUSH.has(e.event)) last.set(binId(e.key), e);
      for (const id of last.keys()) changedAt.set(id, now);
      // Forget old highlights so the map stays small.
      if (changedAt.size > 5000) for (const [id, t] of changedAt) if (now - t > 2000) changedAt.delete(id);
      if (stale.current.size > 10000) stale.current.clear();
      for (const id of last.keys()) stale.current.add(id);
      if (!timer.current) scheduleRefresh(0);
      if (relevant.some((e) => FLUSH.has(e.event))) list.markAllGone();
      list.applyEvents(last, !route.type);
      bump();
      if (selectedId && last.has(selectedId)) setSelectedVersion((v) => v + 1);
    },
    [route.match, route.type, selectedId, list, scheduleRefresh],
  );

  useFeedEvents(route.match, onEvents);

  const selectedIndex = selectedId ? list.indexOf(selectedId) : -1;

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
      if (e.key === "/" && !typing) {
        e.preventDefault();
        filterInput.current?.focus();
      } else if (e.key === "Escape" && route.key && !typing) {
        navigate({ key: null });
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [navigate, route.key]);

  const now = Date.now();
  return (
    <div className={`keys-view${route.key ? " with-panel" : ""}`}>
      <section className="key-list" aria-label="keys">
        <form
          className="filters"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            navigate({ match: patternDraft || "*", key: null });
          }}
        >
          <input
            ref={filterInput}
            aria-label="key pattern"
            placeholder="pattern, e.g. user:*   (press / to focus)"
            value={patternDraft}
            onChange={(e) => setPatternDraft(e.target.value)}
          />
          <select aria-label="key type" value={route.type} onChange={(e) => navigate({ type: e.target.value, key: null })}>
            {TYPES.map((t) => (
              <option key={t} value={t}>
                {t || "all types"}
              </option>
            ))}
          </select>
          <button type="submit">Scan</button>
          <button type="button" onClick={() => setCreating((c) => !c)}>
            New key
          </button>
        </form>
        {creating && (
          <NewKeyForm
            onCreated={(key) => {
              setCreating(false);
              navigate({ key });
            }}
            onCancel={() => setCreating(false)}
          />
        )}
        <p className="list-status" aria-live="polite">
          {list.length.toLocaleString()} keys{done ? "" : "+"}
          {loading && " · scanning…"}
          {error && <span className="error"> · {error}</span>}
          {!done && !loading && (
            <button type="button" className="link" onClick={() => void loadPage(cursor, false)}>
              load more
            </button>
          )}
        </p>
        <div className="key-row key-row-head" aria-hidden="true">
          <span>key</span>
          <span>type</span>
          <span>value</span>
          <span className="ttl">TTL</span>
          <span className="where">node · slot</span>
        </div>
        <VirtualList
          label="keys"
          className="key-vlist"
          count={list.length}
          itemAt={(i) => list.at(i)}
          rowHeight={ROW}
          rowKey={(r) => binId(r.key)}
          selectedIndex={selectedIndex}
          onSelect={(i) => {
            const r = list.at(i);
            if (r) navigate({ key: r.key }, true);
          }}
          onEndReached={done || loading ? undefined : () => void loadPage(cursor, false)}
          onRangeChange={onRange}
          renderRow={(r) => {
            const id = binId(r.key);
            const changed = now - (changedAt.get(id) ?? 0) < 1500;
            return (
              <div className={`key-row${r.gone ? " gone" : ""}${changed ? " changed" : ""}`}>
                <KeyName value={r.key} />
                <span className={`type type-${r.type}`}>{r.type}</span>
                <span className="preview">{r.gone ? "(deleted)" : (previews.get(id) ?? "")}</span>
                <span className="ttl">{r.ttlMs >= 0 ? formatTtl(r.ttlMs) : ""}</span>
                <span className="where" title={nodeOf(r) ?? ""}>
                  {shortId(nodeOf(r))} · {r.slot ?? "–"}
                </span>
              </div>
            );
          }}
        />
      </section>
      {route.key && (
        <KeyPanel
          keyName={route.key}
          version={selectedVersion}
          onClose={() => navigate({ key: null })}
          onRenamed={(to) => navigate({ key: to })}
          onDeleted={() => navigate({ key: null })}
        />
      )}
    </div>
  );
}
