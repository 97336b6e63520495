import { act, cleanup, fireEvent, screen, within } from "@testing-library/react";
import type { Route } from "../lib/route";
import { FakeSocket, fakeServer, oneNodeCluster } from "../test/fakes";
import { renderWith } from "../test/render";
import { LiveFeed } from "./LiveFeed";

afterEach(cleanup);

const route = (r: Partial<Route> = {}): Route => ({ view: "live", match: "*", type: "", key: null, event: "", node: "", ...r });

function setup(r: Partial<Route> = {}) {
  const { server } = fakeServer((_m, url) => (url.pathname === "/api/v1/cluster" ? [200, oneNodeCluster] : undefined));
  server.start();
  renderWith(server, <LiveFeed route={route(r)} navigate={vi.fn()} />);
  const socket = FakeSocket.last();
  act(() => socket.open());
  return { server, socket };
}

const ev = (key: string, event = "set") => ({ type: "event", event, key, node: "n1", ts_ms: Date.now() });

describe("LiveFeed", () => {
  it("shows events as they come, newest first", async () => {
    const { server, socket } = setup();
    act(() => {
      socket.message(ev("a"));
      socket.message(ev("b", "del"));
    });
    const list = screen.getByRole("listbox", { name: "events" });
    await within(list).findByText("b", {}, { timeout: 1000 });
    const keys = [...list.querySelectorAll(".keyname")].map((e) => e.textContent);
    expect(keys).toEqual(["b", "a"]);
    server.stop();
  });

  it("filters by event name", async () => {
    const { server, socket } = setup({ event: "del" });
    act(() => {
      socket.message(ev("kept", "del"));
      socket.message(ev("skipped", "set"));
    });
    const list = screen.getByRole("listbox", { name: "events" });
    await within(list).findByText("kept", {}, { timeout: 1000 });
    expect(within(list).queryByText("skipped")).toBeNull();
    server.stop();
  });

  it("pauses and resumes without losing what came meanwhile", async () => {
    const { server, socket } = setup();
    fireEvent.click(screen.getByRole("button", { name: "Pause" }));
    act(() => socket.message(ev("while-paused")));
    await screen.findByRole("button", { name: "Resume (1 new)" }, { timeout: 1000 });
    expect(screen.queryByText("while-paused")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: /Resume/ }));
    await screen.findByText("while-paused");
    server.stop();
  });

  it("says how many events were dropped when the server reports lagged", async () => {
    const { server, socket } = setup();
    act(() => socket.message({ type: "lagged", missed: 4321 }));
    await screen.findByText(/4,321 events dropped/);
    server.stop();
  });

  it("renders only a window of a huge stream", async () => {
    const { server, socket } = setup();
    act(() => {
      for (let i = 0; i < 20_000; i++) socket.message(ev(`k${i}`));
    });
    const list = screen.getByRole("listbox", { name: "events" });
    await within(list).findByText("k19999", {}, { timeout: 1000 });
    expect(list.querySelectorAll("[role=option]").length).toBeLessThan(100);
    server.stop();
  });
});
