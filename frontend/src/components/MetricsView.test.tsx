import { cleanup, screen } from "@testing-library/react";
import type { InfoSample } from "../client/server";
import { fakeServer, oneNodeCluster } from "../test/fakes";
import { renderWith } from "../test/render";
import { MetricsView, hitRatios } from "./MetricsView";
import { sparkPath } from "./Sparkline";

afterEach(cleanup);

const sample = (hits: number, misses: number): InfoSample => ({
  at: 0,
  info: {
    node: { id: "n", addr: "a", httpAddr: "h", version: "v", role: "master", uptimeS: 1 },
    stats: { opsPerSec: 1, connectedClients: 1, usedMemory: 1, keys: 1, keyspaceHits: hits, keyspaceMisses: misses, commandsProcessed: 1 },
  },
});

describe("MetricsView", () => {
  it("computes the hit ratio between samples, not since start", () => {
    expect(hitRatios([sample(0, 0), sample(90, 10), sample(90, 20), sample(90, 20)])).toEqual([0.9, 0, 0]);
  });

  it("draws a path through every sample", () => {
    expect(sparkPath([1, 2, 3]).split(/[ML]/).filter(Boolean)).toHaveLength(3);
    expect(sparkPath([])).toBe("");
  });

  it("shows this node's numbers from /api/v1/info", async () => {
    const { server } = fakeServer((_m, url) => {
      if (url.pathname === "/api/v1/cluster") return [200, oneNodeCluster];
      if (url.pathname === "/api/v1/info")
        return [200, { node: { id: "n1", addr: "127.0.0.1:6379" }, stats: { ops_per_sec: 1234, connected_clients: 7, used_memory: 2048, keyspace_hits: 1, keyspace_misses: 1 } }];
      return undefined;
    });
    renderWith(server, <MetricsView />);
    await screen.findByText("1,234");
    expect(screen.getByText("2.0 KiB")).toBeTruthy();
    expect(screen.getByText("7")).toBeTruthy();
  });
});
