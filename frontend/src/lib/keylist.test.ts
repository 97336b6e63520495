// @vitest-environment node
import type { KeySummary } from "../client/api";
import type { FeedEvent } from "../client/feed";
import { KeyList } from "./keylist";

const summary = (k: string): KeySummary => ({ key: { text: k, b64: false }, type: "string", ttlMs: -1, slot: 0, node: "n" });
const ev = (k: string, event = "set"): [string, FeedEvent] => [`t:${k}`, { seq: 1, event, key: { text: k, b64: false }, node: "n", db: 0, tsMs: 0 }];

describe("the Keys view's rows", () => {
  it("appends pages in order and skips keys SCAN returned twice", () => {
    const list = new KeyList();
    expect(list.appendScanned([summary("a"), summary("b")])).toBe(2);
    expect(list.appendScanned([summary("b"), summary("c")])).toBe(1);
    expect([0, 1, 2].map((i) => list.at(i)?.key.text)).toEqual(["a", "b", "c"]);
    expect(list.indexOf("t:c")).toBe(2);
  });

  it("lists keys announced by the feed first, and marks deleted ones", () => {
    const list = new KeyList();
    list.appendScanned([summary("a"), summary("b")]);
    const changed = list.applyEvents(new Map([ev("new1"), ev("a", "del"), ev("new2")]), true);
    expect(changed.sort()).toEqual(["t:a", "t:new1", "t:new2"]);
    expect(list.length).toBe(4);
    expect(list.at(0)?.key.text).toBe("new2");
    expect(list.indexOf("t:b")).toBe(3);
    expect(list.get("t:a")?.gone).toBe(true);
    list.applyEvents(new Map([ev("a", "set")]), true);
    expect(list.get("t:a")?.gone).toBe(false);
  });

  it("does not add keys when told not to (a type filter is on)", () => {
    const list = new KeyList();
    expect(list.applyEvents(new Map([ev("x")]), false)).toEqual([]);
    expect(list.length).toBe(0);
  });

  it("applies events to a million keys without touching the rest", () => {
    const list = new KeyList();
    for (let p = 0; p < 100; p++) list.appendScanned(Array.from({ length: 10_000 }, (_, i) => summary(`key:${p * 10_000 + i}`)));
    expect(list.length).toBe(1_000_000);
    for (let b = 0; b < 100; b++) list.applyEvents(new Map(Array.from({ length: 100 }, (_, i) => ev(`key:${b * 1000 + i}`))), true);
    expect(list.indexOf("t:key:999999")).toBe(999_999);
    expect(list.length).toBe(1_000_000);
    expect(list.indexOf("t:key:99100")).toBe(99_100);
  }, 60_000);
});
