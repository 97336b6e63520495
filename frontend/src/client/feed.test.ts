import { FakeSocket } from "../test/fakes";
import { Feed, type FeedEvent, feedUrl } from "./feed";

function makeFeed(opts: { capacity?: number } = {}) {
  FakeSocket.all = [];
  let now = 0;
  const feed = new Feed({ url: "ws://node.test/ws", socket: (u) => new FakeSocket(u), flushMs: 100, backoffMs: [100, 200, 400], now: () => now, ...opts });
  return { feed, tick: (ms: number) => (now += ms) };
}

const event = (key: string, extra: object = {}) => ({ type: "event", event: "set", key, db: 0, node: "n1", ts_ms: 1, ...extra });

describe("the live feed", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("subscribes once per pattern and restores subscriptions after a reconnect", () => {
    const { feed } = makeFeed();
    const stopA = feed.subscribe("user:*");
    feed.subscribe("user:*");
    feed.start();
    const first = FakeSocket.last();
    first.open();
    expect(first.sent).toEqual([{ op: "subscribe", pattern: "user:*", scope: "cluster" }]);

    first.drop();
    expect(feed.getStats().status).toBe("reconnecting");
    vi.advanceTimersByTime(99);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(1);
    const second = FakeSocket.last();
    expect(second).not.toBe(first);
    second.open();
    expect(second.sent).toEqual([{ op: "subscribe", pattern: "user:*", scope: "cluster" }]);
    expect(feed.getStats()).toMatchObject({ status: "open", reconnects: 1 });

    stopA();
    expect(second.sent).toHaveLength(1); // still one subscriber left
    feed.stop();
  });

  it("backs off between failed attempts and resets once connected", () => {
    const { feed } = makeFeed();
    feed.start();
    FakeSocket.last().drop();
    vi.advanceTimersByTime(100);
    FakeSocket.last().drop();
    vi.advanceTimersByTime(199);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(3);
    FakeSocket.last().open();
    FakeSocket.last().drop();
    vi.advanceTimersByTime(100);
    expect(FakeSocket.all).toHaveLength(4);
    feed.stop();
  });

  it("hands events over in batches, not one render per message", () => {
    const { feed } = makeFeed();
    const batches: FeedEvent[][] = [];
    feed.onEvents((b) => batches.push(b));
    feed.start();
    const s = FakeSocket.last();
    s.open();
    for (let i = 0; i < 10_000; i++) s.message(event(`k${i}`));
    expect(batches).toHaveLength(0);
    vi.advanceTimersByTime(100);
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(10_000);
    expect(batches[0]?.[9999]?.key.text).toBe("k9999");
    feed.stop();
  });

  it("keeps its queue bounded and counts what it dropped", () => {
    const { feed } = makeFeed({ capacity: 100 });
    const batches: FeedEvent[][] = [];
    feed.onEvents((b) => batches.push(b));
    feed.start();
    const s = FakeSocket.last();
    s.open();
    for (let i = 0; i < 250; i++) s.message(event(`k${i}`));
    vi.advanceTimersByTime(100);
    expect(batches[0]).toHaveLength(100);
    expect(batches[0]?.[0]?.key.text).toBe("k150");
    expect(feed.getStats()).toMatchObject({ droppedHere: 150, received: 250 });
    feed.stop();
  });

  it("adds up what the server dropped for us (lagged)", () => {
    const { feed } = makeFeed();
    feed.start();
    const s = FakeSocket.last();
    s.open();
    s.message({ type: "lagged", missed: 10 });
    s.message({ type: "lagged", missed: 5 });
    expect(feed.getStats().missed).toBe(15);
    feed.stop();
  });

  it("keeps binary keys as base64 and ignores what it cannot read", () => {
    const { feed } = makeFeed();
    const got: FeedEvent[] = [];
    feed.onEvents((b) => got.push(...b));
    feed.start();
    const s = FakeSocket.last();
    s.open();
    s.message(event("AP8=", { key_b64: true }));
    s.message("{not json");
    s.message({ type: "mystery" });
    s.message("42");
    vi.advanceTimersByTime(100);
    expect(got).toHaveLength(1);
    expect(got[0]?.key).toEqual({ text: "AP8=", b64: true });
    feed.stop();
  });

  it("reports the rate over the last second", () => {
    const { feed, tick } = makeFeed();
    feed.start();
    const s = FakeSocket.last();
    s.open();
    for (let i = 0; i < 500; i++) s.message(event(`k${i}`));
    tick(100);
    vi.advanceTimersByTime(100);
    expect(feed.getStats().rate).toBe(500);
    tick(1000);
    vi.advanceTimersByTime(100);
    expect(feed.getStats().rate).toBe(0);
    feed.stop();
  });

  it("passes cluster changes on", () => {
    const { feed } = makeFeed();
    const seen: string[] = [];
    feed.onCluster((c) => seen.push(`${c.state}:${c.nodes.map((n) => n.state).join(",")}`));
    feed.start();
    const s = FakeSocket.last();
    s.open();
    s.message({ type: "cluster", state: "fail", nodes: [{ id: "a", state: "ok" }, { id: "b", state: "fail" }] });
    expect(seen).toEqual(["fail:ok,fail"]);
    feed.stop();
  });

  it("uses wss behind https", () => {
    expect(feedUrl("", { protocol: "https:", host: "h:1" })).toBe("wss://h:1/ws");
    expect(feedUrl("http://n:8080", { protocol: "https:", host: "h" })).toBe("ws://n:8080/ws");
  });
});
