// @vitest-environment node
import { formatRoute, parseRoute } from "./route";

describe("deep links", () => {
  it("opens on the keys by default", () => {
    expect(parseRoute("/", "")).toMatchObject({ view: "keys", match: "*", key: null });
  });

  it("round-trips view, pattern, type and key", () => {
    const r = parseRoute("/keys", "?match=user%3A*&type=hash&key=user%3A1");
    expect(r).toMatchObject({ view: "keys", match: "user:*", type: "hash", key: { text: "user:1", b64: false } });
    expect(formatRoute(r)).toBe("/keys?match=user%3A*&type=hash&key=user%3A1");
  });

  it("carries binary keys as base64", () => {
    const r = parseRoute("/keys", "?key64=AP8%3D");
    expect(r.key).toEqual({ text: "AP8=", b64: true });
    expect(formatRoute(r)).toBe("/keys?key64=AP8%3D");
  });

  it("keeps the live view's filters and drops what it does not use", () => {
    const r = parseRoute("/live", "?match=o*&event=del&node=n2&key=x");
    expect(formatRoute(r)).toBe("/live?match=o*&event=del&node=n2");
  });

  it("keeps the metrics view off the node's Prometheus /metrics", () => {
    expect(formatRoute({ ...parseRoute("/charts", ""), view: "metrics" })).toBe("/charts");
    expect(parseRoute("/charts", "").view).toBe("metrics");
    expect(parseRoute("/metrics", "").view).toBe("keys");
  });

  it("treats unknown paths as the keys view", () => {
    expect(parseRoute("/nope", "").view).toBe("keys");
  });
});
