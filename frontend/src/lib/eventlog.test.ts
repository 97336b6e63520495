// @vitest-environment node
import type { FeedEvent } from "../client/feed";
import { RateMeter, addBatch, emptyLog, setPaused } from "./eventlog";

const ev = (seq: number): FeedEvent => ({ seq, event: "set", key: { text: `k${seq}`, b64: false }, node: "n", db: 0, tsMs: seq });
const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => ev(from + i));

describe("the live view's event log", () => {
  it("keeps the newest events first and never more than its capacity", () => {
    let log = addBatch(emptyLog, batch(1, 3), 5);
    expect(log.shown.map((e) => e.seq)).toEqual([3, 2, 1]);
    log = addBatch(log, batch(4, 10_000), 5);
    expect(log.shown.map((e) => e.seq)).toEqual([10003, 10002, 10001, 10000, 9999]);
  });

  it("holds events while paused, counts what does not fit, and shows them on resume", () => {
    let log = addBatch(emptyLog, batch(1, 2), 4);
    log = setPaused(log, true, 4);
    log = addBatch(log, batch(3, 6), 4);
    expect(log.shown.map((e) => e.seq)).toEqual([2, 1]);
    expect(log.held).toHaveLength(4);
    expect(log.overflow).toBe(2);
    log = setPaused(log, false, 4);
    expect(log.shown.map((e) => e.seq)).toEqual([8, 7, 6, 5]);
    expect(log.overflow).toBe(0);
  });

  it("measures the rate over the last second", () => {
    const m = new RateMeter();
    m.add(0, 100);
    m.add(500, 200);
    expect(m.rate(900)).toBe(300);
    expect(m.rate(1200)).toBe(200);
    expect(m.rate(2000)).toBe(0);
  });
});
