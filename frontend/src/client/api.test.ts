// @vitest-environment node
import { fakeFetch } from "../test/fakes";
import { Api, ApiError, parseKeyDetail } from "./api";

describe("the REST client", () => {
  it("reads every value shape, binary items included", () => {
    expect(parseKeyDetail({ key: "s", type: "string", ttl_ms: -1, value: "AP8=", value_b64: true, truncated: false }).data).toEqual({
      type: "string",
      value: { text: "AP8=", b64: true },
    });
    // One value_b64 flag covers every element of an aggregate.
    expect(parseKeyDetail({ key: "h", type: "hash", value: [["Zg==", "AA=="]], value_b64: true }).data).toEqual({
      type: "hash",
      value: [[{ text: "Zg==", b64: true }, { text: "AA==", b64: true }]],
    });
    expect(parseKeyDetail({ key: "z", type: "zset", value: [["m", 1.5], ["n", "inf"], ["o", "-inf"]] }).data).toEqual({
      type: "zset",
      value: [
        [{ text: "m", b64: false }, 1.5],
        [{ text: "n", b64: false }, Infinity],
        [{ text: "o", b64: false }, -Infinity],
      ],
    });
    // Stream IDs are never base64, whatever the flag says of the fields.
    expect(
      parseKeyDetail({ key: "x", type: "stream", value: [{ id: "1-1", fields: [["Zg==", "/w=="], ["YQ==", "Yg=="]] }], value_b64: true }).data,
    ).toEqual({
      type: "stream",
      value: [
        {
          id: "1-1",
          fields: [
            [{ text: "Zg==", b64: true }, { text: "/w==", b64: true }],
            [{ text: "YQ==", b64: true }, { text: "Yg==", b64: true }],
          ],
        },
      ],
    });
    const list = parseKeyDetail({ key: "l", type: "list", value: ["a", "b"], truncated: true, size: 5000 });
    expect(list.truncated).toBe(true);
    expect(list.size).toBe(5000);
  });

  it("puts binary keys in the URL as percent-encoded bytes", async () => {
    const { fetch, calls } = fakeFetch(() => [200, { key: "AP8=", key_b64: true, type: "string", value: "x" }]);
    await new Api({ base: "", token: null, fetch }).getKey({ text: "AP8=", b64: true }, 10);
    expect(calls[0]?.url.pathname).toBe("/api/v1/keys/%00%FF");
    expect(calls[0]?.url.search).toBe("?limit=10");
  });

  it("sends writes in the contract's shape, with the token when there is one", async () => {
    const { fetch, calls } = fakeFetch((_m, _u, body) => [200, { key: "k", type: "hash", value: (body as { value: unknown }).value }]);
    const api = new Api({ base: "", token: "s3cret", fetch });
    await api.putKey({ text: "k", b64: false }, { type: "hash", value: [[{ text: "f", b64: false }, { text: "AA==", b64: true }]] }, 5000);
    expect(calls[0]?.method).toBe("PUT");
    // "f" is sent as base64 too: the one flag covers the whole value.
    expect(calls[0]?.body).toEqual({ type: "hash", value: [["Zg==", "AA=="]], value_b64: true, ttl_ms: 5000 });
    await api.putKey({ text: "z", b64: false }, { type: "zset", value: [[{ text: "m", b64: false }, -Infinity]] }, null);
    expect(calls[1]?.body).toEqual({ type: "zset", value: [["m", "-inf"]] });
    await api.patchKey({ text: "k", b64: false }, { ttlMs: null });
    expect(calls[2]?.body).toEqual({ ttl_ms: null });
    // Streams: entries with their IDs, none (the node picks it) when left empty.
    const t = (text: string) => ({ text, b64: false });
    await api.putKey(
      { text: "s", b64: false },
      {
        type: "stream",
        value: [
          { id: "1-1", fields: [[t("f"), t("v")]] },
          { id: " ", fields: [[t("g"), { text: "/w==", b64: true }]] },
        ],
      },
      null,
    );
    expect(calls[3]?.body).toEqual({
      type: "stream",
      value: [{ id: "1-1", fields: [["Zg==", "dg=="]] }, { fields: [["Zw==", "/w=="]] }],
      value_b64: true,
    });
  });

  it("turns error bodies into ApiError with the server's code", async () => {
    const { fetch } = fakeFetch(() => [403, { error: { code: "writes_disabled", message: "writes are disabled" } }]);
    const err = await new Api({ base: "", token: null, fetch }).deleteKey({ text: "k", b64: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 403, code: "writes_disabled", message: "writes are disabled" });
  });

  it("says the node is unreachable when fetch fails", async () => {
    const failing = (async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch;
    await expect(new Api({ base: "", token: null, fetch: failing }).info()).rejects.toMatchObject({ code: "unreachable" });
  });
});
