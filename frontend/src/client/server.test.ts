import { FakeSocket, fakeServer, oneNodeCluster } from "../test/fakes";

describe("the server client", () => {
  it("keeps the cluster view current and says when the node is unreachable", async () => {
    let up = true;
    const { server, calls } = fakeServer((_m, url) => (url.pathname === "/api/v1/cluster" && up ? [200, oneNodeCluster] : [503, { error: { code: "not_ready", message: "loading" } }]));
    await server.refreshCluster();
    expect(server.getCluster().cluster?.nodes[0]?.myself).toBe(true);
    up = false;
    await server.refreshCluster();
    expect(server.getCluster().error).toBe("loading");
    expect(server.getCluster().cluster).not.toBeNull(); // the last good view stays on screen
    up = true;
    server.start();
    FakeSocket.last().open(); // back after a restart: catch up at once
    await vi.waitFor(() => expect(server.getCluster().error).toBeNull());
    const before = calls.length;
    FakeSocket.last().message({ type: "cluster", state: "fail", nodes: [{ id: "n1", state: "fail" }] });
    expect(server.getCluster().cluster?.state).toBe("fail");
    await vi.waitFor(() => expect(calls.length).toBeGreaterThan(before));
    server.stop();
  });
});
