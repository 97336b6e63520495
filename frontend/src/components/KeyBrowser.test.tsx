import { act, cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import type { Route } from "../lib/route";
import { FakeSocket, fakeServer, oneNodeCluster } from "../test/fakes";
import { renderWith } from "../test/render";
import { KeyBrowser } from "./KeyBrowser";

const route = (r: Partial<Route> = {}): Route => ({ view: "keys", match: "*", type: "", key: null, event: "", node: "", ...r });

function setup(values: Record<string, string>, r: Partial<Route> = {}) {
  const store = new Map(Object.entries(values));
  const { server, calls } = fakeServer((method, url) => {
    if (url.pathname === "/api/v1/cluster") return [200, oneNodeCluster];
    if (url.pathname === "/api/v1/keys")
      return [200, { cursor: "0", keys: [...store.keys()].map((key) => ({ key, type: "string", ttl_ms: -1, slot: 1, node: "n1" })) }];
    const key = decodeURIComponent(url.pathname.replace("/api/v1/keys/", ""));
    if (method === "GET" && store.has(key)) return [200, { key, type: "string", ttl_ms: -1, slot: 1, node: "n1", size: 3, value: store.get(key), truncated: false }];
    if (method === "DELETE") return [200, { deleted: store.delete(key) ? 1 : 0 }];
    return undefined;
  });
  server.start();
  const navigate = vi.fn();
  const view = renderWith(server, <KeyBrowser route={route(r)} navigate={navigate} />);
  return { server, calls, navigate, store, view };
}

afterEach(cleanup);

describe("KeyBrowser", () => {
  it("lists the keys with their values", async () => {
    const { server } = setup({ "user:1": "alice", "user:2": "bob" });
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText("alice");
    expect(within(list).getByText("user:2")).toBeTruthy();
    expect(screen.getByText(/2 keys/)).toBeTruthy();
    server.stop();
  });

  it("updates values in place and adds new keys as the feed reports them", async () => {
    const { server, store } = setup({ "user:1": "alice" });
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText("alice");
    const socket = FakeSocket.last();
    act(() => socket.open());
    expect(socket.sent).toContainEqual({ op: "subscribe", pattern: "*", scope: "cluster" });
    store.set("user:1", "alice v2");
    store.set("user:3", "carol");
    act(() => {
      socket.message({ type: "event", event: "set", key: "user:1", node: "n1", ts_ms: 1 });
      socket.message({ type: "event", event: "set", key: "user:3", node: "n1", ts_ms: 1 });
    });
    await within(list).findByText("alice v2", {}, { timeout: 2000 });
    await within(list).findByText("carol", {}, { timeout: 2000 });
    server.stop();
  });

  it("shows a key's node by its slot, and the new node once the slot moves", async () => {
    const [n1, n2] = [
      { ...oneNodeCluster.nodes[0], id: "n1", slots: [[0, 8191]] },
      { ...oneNodeCluster.nodes[0], id: "n2", addr: "127.0.0.1:6380", myself: false, slots: [[8192, 16383]] },
    ];
    const cluster = { ...oneNodeCluster, nodes: [n1, n2] };
    const { server } = fakeServer((method, url) => {
      if (url.pathname === "/api/v1/cluster") return [200, cluster];
      if (url.pathname === "/api/v1/keys") return [200, { cursor: "0", keys: [{ key: "k", type: "string", ttl_ms: -1, slot: 1, node: "n1" }] }];
      if (method === "GET") return [200, { key: "k", type: "string", ttl_ms: -1, slot: 1, node: "n1", size: 1, value: "v", truncated: false }];
      return undefined;
    });
    server.start();
    renderWith(server, <KeyBrowser route={route()} navigate={vi.fn()} />);
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText("v");
    await within(list).findByText("n1 · 1");
    // Slot 1 moves to n2 (automatic distribution): the row follows without a rescan.
    cluster.nodes = [
      { ...n1, slots: [[2, 8191]] },
      { ...n2, slots: [[0, 1], [8192, 16383]] },
    ];
    const socket = FakeSocket.last();
    act(() => socket.open());
    act(() => socket.message({ type: "cluster", state: "ok", nodes: cluster.nodes }));
    await within(list).findByText("n2 · 1", {}, { timeout: 2000 });
    server.stop();
  });

  it("strikes out deleted keys", async () => {
    const { server } = setup({ "user:1": "alice" });
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText("alice");
    const socket = FakeSocket.last();
    act(() => socket.open());
    act(() => socket.message({ type: "event", event: "del", key: "user:1", node: "n1", ts_ms: 1 }));
    await within(list).findByText("(deleted)", {}, { timeout: 2000 });
    server.stop();
  });

  it("ignores events for keys outside its pattern", async () => {
    const { server } = setup({ "user:1": "alice" }, { match: "user:*" });
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText("alice");
    const socket = FakeSocket.last();
    act(() => socket.open());
    act(() => socket.message({ type: "event", event: "set", key: "order:9", node: "n1", ts_ms: 1 }));
    await act(() => new Promise((r) => setTimeout(r, 250)));
    expect(within(list).queryByText("order:9")).toBeNull();
    server.stop();
  });

  it("shows hostile values as text, never as markup", async () => {
    const { server, view } = setup({ evil: '<img src=x onerror="alert(1)">' });
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText('<img src=x onerror="alert(1)">');
    expect(view.container.querySelector("img")).toBeNull();
    server.stop();
  });

  it("selects keys with the keyboard and puts them in the URL", async () => {
    const { server, navigate } = setup({ a: "1", b: "2" });
    const list = await screen.findByRole("listbox", { name: "keys" });
    await within(list).findByText("a");
    fireEvent.keyDown(list, { key: "ArrowDown" });
    expect(navigate).toHaveBeenCalledWith({ key: { text: "a", b64: false } }, true);
    server.stop();
  });

  it("submits a new pattern to the URL", async () => {
    const { server, navigate } = setup({});
    fireEvent.change(screen.getByLabelText("key pattern"), { target: { value: "user:*" } });
    fireEvent.submit(screen.getByRole("search"));
    expect(navigate).toHaveBeenCalledWith({ match: "user:*", key: null });
    await waitFor(() => expect(screen.getByText(/0 keys/)).toBeTruthy());
    server.stop();
  });
});
