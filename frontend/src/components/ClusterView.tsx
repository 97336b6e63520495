// The cluster as the node we talk to sees it: each node's role, address, state, epoch, keys,
// memory and load, the slot map, and links to open this UI on another node.

import { useCluster, useFeedStats } from "../client/server";
import { formatBytes } from "../lib/bytes";
import { shortId } from "./KeyPanel";
import { SlotMap, nodeColor } from "./SlotMap";

export function ClusterView() {
  const { cluster, error, updatedAt } = useCluster();
  const feed = useFeedStats();
  if (!cluster) {
    return (
      <section className="cluster-view" aria-label="cluster">
        <p className={error ? "error" : "muted"}>{error ? `Cannot reach the node: ${error}. Retrying…` : "Loading the cluster…"}</p>
      </section>
    );
  }
  return (
    <section className="cluster-view" aria-label="cluster">
      <header className="cluster-head">
        <h2>
          Cluster <span className={`state state-${cluster.state}`}>{cluster.state}</span>
        </h2>
        <p className="muted">
          {cluster.mode} · {cluster.slotsAssigned.toLocaleString()} / {(16384).toLocaleString()} slots assigned · {cluster.nodes.length} nodes
          {cluster.currentEpoch !== null && ` · epoch ${cluster.currentEpoch}`}
          {error && <span className="error"> · last update failed ({error}), showing {new Date(updatedAt).toLocaleTimeString()}</span>}
          {feed.status !== "open" && <span className="error"> · live feed {feed.status}</span>}
        </p>
      </header>
      <div className="table-wrap">
        <table className="nodes">
          <thead>
            <tr>
              <th>node</th>
              <th>state</th>
              <th>address</th>
              <th>role</th>
              <th>epoch</th>
              <th>slots</th>
              <th>keys</th>
              <th>memory</th>
              <th>ops/s</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {cluster.nodes.map((n, i) => (
              <tr key={n.id} className={`node-${n.state}`}>
                <td title={n.id}>
                  <i className="swatch" style={{ background: nodeColor(i) }} /> {shortId(n.id)}
                  {n.myself && <span className="badge">this node</span>}
                </td>
                <td>
                  <span className={`state state-${n.state}`}>{n.state}</span>
                </td>
                <td>{n.addr}</td>
                <td>{n.role}</td>
                <td>{n.configEpoch}</td>
                <td>{n.slots.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(", ") || "–"}</td>
                <td>{n.keys.toLocaleString()}</td>
                <td>{formatBytes(n.usedMemory)}</td>
                <td>{n.opsPerSec.toLocaleString()}</td>
                <td>
                  {!n.myself && n.httpAddr && (
                    <a href={`http://${n.httpAddr}/cluster`} title="Open this UI on that node">
                      switch
                    </a>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <SlotMap nodes={cluster.nodes} moving={cluster.moving} />
    </section>
  );
}
