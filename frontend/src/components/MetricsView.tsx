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

/** Hit ratio between consecutive samples (what happened lately, not since start). */
export function hitRatios(samples: InfoSample[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = (samples[i - 1] as InfoSample).info.stats;
    const b = (samples[i] as InfoSample).info.stats;
    const hits = b.keyspaceHits - a.keyspaceHits;
    const misses = b.keyspaceMisses - a.keyspaceMisses;
    const prev = out[out.length - 1];
    out.push(hits + misses > 0 ? hits / (hits + misses) : (prev ?? 0));
  }
  return out;
}

interface NodeSeries {
  addr: string;
  ops: number[];
  memory: number[];
  keys: number[];
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
        const s = prev.get(n.id) ?? { addr: n.addr, ops: [], memory: [], keys: [] };
        next.set(n.id, {
          addr: n.addr,
          ops: [...s.ops, n.opsPerSec].slice(-KEEP),
          memory: [...s.memory, n.usedMemory].slice(-KEEP),
          keys: [...s.keys, n.keys].slice(-KEEP),
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
      </div>
      {nodes.length > 1 && (
        <>
          <h2>Per node</h2>
          {nodes.map(([id, s], i) => (
            <div className="charts" key={id}>
              <Sparkline title={`${s.addr} ops/s`} values={s.ops} format={fmtNum} color={nodeColor(i)} />
              <Sparkline title={`${s.addr} memory`} values={s.memory} format={formatBytes} color={nodeColor(i)} />
              <Sparkline title={`${s.addr} keys`} values={s.keys} format={fmtNum} color={nodeColor(i)} />
            </div>
          ))}
        </>
      )}
    </section>
  );
}
