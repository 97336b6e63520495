// Live charts: this node from /api/v1/info every second (ops/s, memory, clients, hit ratio), and
// every node plus the cluster's total from the cluster view the client already polls.

import { useEffect, useRef, useState } from "react";
import type { Cluster } from "../client/api";
import { type InfoSample, useCluster, useInfoSamples } from "../client/server";
import { formatBytes } from "../lib/bytes";
import { nodeColor } from "./SlotMap";
import { Sparkline } from "./Sparkline";

const KEEP = 120;
const fmtNum = (v: number) => Math.round(v).toLocaleString();
const fmtPct = (v: number) => `${(v * 100).toFixed(1)} %`;

/** Increases between consecutive readings of a counter (a counter that went down, because its
 * node restarted, counts from zero). */
function increases(xs: number[]): number[] {
  return xs.slice(1).map((b, i) => {
    const a = xs[i] ?? 0;
    return b >= a ? b - a : b;
  });
}

/** Hit ratio per interval from the hits and misses in each; with no lookups, the last stands. */
function ratios(hits: number[], misses: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(hits.length, misses.length); i++) {
    const h = hits[i] ?? 0;
    const m = misses[i] ?? 0;
    out.push(h + m > 0 ? h / (h + m) : (out[out.length - 1] ?? 0));
  }
  return out;
}

/** Hit ratio between consecutive readings of the hit and miss counters (what happened lately,
 * not since start). */
export function ratioSeries(hits: number[], misses: number[]): number[] {
  return ratios(increases(hits), increases(misses));
}

/** This node's hit ratio between consecutive /api/v1/info samples. */
export function hitRatios(samples: InfoSample[]): number[] {
  const stats = samples.map((s) => s.info.stats);
  return ratioSeries(
    stats.map((s) => s.keyspaceHits),
    stats.map((s) => s.keyspaceMisses),
  );
}

interface NodeSeries {
  addr: string;
  ops: number[];
  memory: number[];
  keys: number[];
  clients: number[];
  hits: number[];
  misses: number[];
}

function useClusterSeries(cluster: Cluster | null, updatedAt: number): Map<string, NodeSeries> {
  const [series, setSeries] = useState(() => new Map<string, NodeSeries>());
  const last = useRef(0);
  useEffect(() => {
    if (!cluster || updatedAt === last.current) return;
    last.current = updatedAt;
    setSeries((prev) => {
      const next = new Map<string, NodeSeries>();
      for (const n of cluster.nodes) {
        const s = prev.get(n.id) ?? { addr: n.addr, ops: [], memory: [], keys: [], clients: [], hits: [], misses: [] };
        next.set(n.id, {
          addr: n.addr,
          ops: [...s.ops, n.opsPerSec].slice(-KEEP),
          memory: [...s.memory, n.usedMemory].slice(-KEEP),
          keys: [...s.keys, n.keys].slice(-KEEP),
          clients: [...s.clients, n.connectedClients].slice(-KEEP),
          hits: [...s.hits, n.keyspaceHits].slice(-KEEP),
          misses: [...s.misses, n.keyspaceMisses].slice(-KEEP),
        });
      }
      return next;
    });
  }, [cluster, updatedAt]);
  return series;
}

export function MetricsView() {
  const { samples, error } = useInfoSamples(1000, KEEP);
  const { cluster, updatedAt } = useCluster();
  const series = useClusterSeries(cluster, updatedAt);
  const stats = samples.map((s) => s.info.stats);
  const nodes = [...series.entries()];
  const total = (pick: (s: NodeSeries) => number[]) => {
    const len = Math.max(0, ...nodes.map(([, s]) => pick(s).length));
    return Array.from({ length: len }, (_, i) => nodes.reduce((sum, [, s]) => sum + (pick(s)[pick(s).length - len + i] ?? 0), 0));
  };
  // The cluster's ratio: every node's lookups in each interval, added up.
  const clusterRatio = () => ratios(total((s) => increases(s.hits)), total((s) => increases(s.misses)));
  return (
    <section className="metrics-view" aria-label="metrics">
      <h2>This node {samples[0] && <span className="muted">{samples[samples.length - 1]?.info.node.addr}</span>}</h2>
      {error && <p className="error">Cannot read /api/v1/info: {error}. Retrying every second.</p>}
      <div className="charts">
        <Sparkline title="ops/s" values={stats.map((s) => s.opsPerSec)} format={fmtNum} />
        <Sparkline title="memory" values={stats.map((s) => s.usedMemory)} format={formatBytes} />
        <Sparkline title="clients" values={stats.map((s) => s.connectedClients)} format={fmtNum} />
        <Sparkline title="hit ratio" values={hitRatios(samples)} format={fmtPct} range={[0, 1]} />
      </div>
      <h2>Cluster</h2>
      <div className="charts">
        <Sparkline title="ops/s, all nodes" values={total((s) => s.ops)} format={fmtNum} />
        <Sparkline title="memory, all nodes" values={total((s) => s.memory)} format={formatBytes} />
        <Sparkline title="keys, all nodes" values={total((s) => s.keys)} format={fmtNum} />
        <Sparkline title="clients, all nodes" values={total((s) => s.clients)} format={fmtNum} />
        <Sparkline title="hit ratio, all nodes" values={clusterRatio()} format={fmtPct} range={[0, 1]} />
      </div>
      {nodes.length > 1 && (
        <>
          <h2>Per node</h2>
          {nodes.map(([id, s], i) => (
            <div className="charts" key={id}>
              <Sparkline title={`${s.addr} ops/s`} values={s.ops} format={fmtNum} color={nodeColor(i)} />
              <Sparkline title={`${s.addr} memory`} values={s.memory} format={formatBytes} color={nodeColor(i)} />
              <Sparkline title={`${s.addr} keys`} values={s.keys} format={fmtNum} color={nodeColor(i)} />
              <Sparkline title={`${s.addr} clients`} values={s.clients} format={fmtNum} color={nodeColor(i)} />
              <Sparkline title={`${s.addr} hit ratio`} values={ratioSeries(s.hits, s.misses)} format={fmtPct} range={[0, 1]} color={nodeColor(i)} />
            </div>
          ))}
        </>
      )}
    </section>
  );
}
