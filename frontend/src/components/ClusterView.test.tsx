import { cleanup, screen } from "@testing-library/react";
import { fakeServer } from "../test/fakes";
import { renderWith } from "../test/render";
import { ClusterView } from "./ClusterView";

afterEach(cleanup);

const node = (id: string, port: number, state: string, slots: number[][], myself = false) => ({
  id,
  addr: `127.0.0.1:${port}`,
  http_addr: `127.0.0.1:${port + 1000}`,
  role: "master",
  state,
  config_epoch: port % 10,
  slots,
  keys: 10,
  used_memory: 1 << 20,
  ops_per_sec: 3,
  myself,
});

describe("ClusterView", () => {
  it("lists nodes with their state and links to open the UI on the others", async () => {
    const { server } = fakeServer(() => [
      200,
      { state: "fail", mode: "auto", slots_assigned: 16384, nodes: [node("aaaa", 7001, "ok", [[0, 8191]], true), node("bbbb", 7002, "fail", [[8192, 16383]])], moving: [] },
    ]);
    await server.refreshCluster();
    renderWith(server, <ClusterView />);
    expect(screen.getAllByText("fail").length).toBeGreaterThanOrEqual(2);
    expect(screen.getByText("this node")).toBeTruthy();
    expect(screen.getByRole("link", { name: "switch" }).getAttribute("href")).toBe("http://127.0.0.1:8002/cluster");
    expect(screen.getByText("8192-16383")).toBeTruthy();
  });

  it("says when it cannot reach the node", async () => {
    const { server } = fakeServer(() => [503, { error: { code: "not_ready", message: "loading" } }]);
    await server.refreshCluster();
    renderWith(server, <ClusterView />);
    expect(screen.getByText(/Cannot reach the node: loading/)).toBeTruthy();
  });
});
