import { cleanup, screen } from "@testing-library/react";
import type { InfoSample } from "../client/server";
import { fakeServer, oneNodeCluster } from "../test/fakes";
import { renderWith } from "../test/render";
import { MetricsView, hitRatios, ratioSeries } from "./MetricsView";
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

  it("takes a counter that went down (a restarted node) as counting from zero", () => {
    expect(ratioSeries([10, 30, 5, 5], [0, 10, 5, 5])).toEqual([2 / 3, 0.5, 0.5]);
    expect(ratioSeries([7], [1])).toEqual([]);
  });

  it("charts clients and hit ratio per node and for the whole cluster", async () => {
    const node = (id: string, port: number, clients: number) => ({
      id,
      addr: `127.0.0.1:${port}`,
      http_addr: "h",
      role: "master",
      state: "ok",
      config_epoch: 1,
      slots: [[0, 1]],
      keys: 1,
      used_memory: 1,
      ops_per_sec: 1,
      connected_clients: clients,
      keyspace_hits: 5,
      keyspace_misses: 5,
      myself: id === "a",
    });
    const { server } = fakeServer((_m, url) => {
      if (url.pathname === "/api/v1/cluster") return [200, { state: "ok", mode: "auto", slots_assigned: 16384, nodes: [node("a", 7001, 3), node("b", 7002, 40)], moving: [] }];
      if (url.pathname === "/api/v1/info") return [200, { node: { id: "a", addr: "127.0.0.1:7001" }, stats: {} }];
      return undefined;
    });
    renderWith(server, <MetricsView />);
    await server.refreshCluster();
    const caption = async (title: string) => (await screen.findByText(title)).closest("figcaption")?.textContent;
    expect(await caption("127.0.0.1:7002 clients")).toBe("127.0.0.1:7002 clients40");
    expect(await caption("clients, all nodes")).toBe("clients, all nodes43");
    // One reading of the counters: no interval yet to take a ratio over.
    expect(await caption("127.0.0.1:7001 hit ratio")).toBe("127.0.0.1:7001 hit ratio–");
    expect(await caption("hit ratio, all nodes")).toBe("hit ratio, all nodes–");
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
