// @vitest-environment node
import { bin, binToUrl, bytesToBase64, displayBytes, formatTtl, preview, readBin } from "./bytes";

const b64 = (bytes: number[]) => bytesToBase64(new Uint8Array(bytes));

describe("bytes from the API", () => {
  it("reads every wire form of a value", () => {
    expect(readBin("hi")).toEqual({ text: "hi", b64: false });
    expect(readBin("aGk=", true)).toEqual({ text: "aGk=", b64: true });
    expect(readBin({ b64: "AP8=" })).toEqual({ text: "AP8=", b64: true });
    expect(readBin({ value: "AP8=", value_b64: true })).toEqual({ text: "AP8=", b64: true });
    expect(readBin(42)).toEqual({ text: "42", b64: false });
    expect(readBin(null)).toEqual({ text: "", b64: false });
  });

  it("shows binary bytes as \\xNN escapes, as redis-cli does", () => {
    expect(displayBytes(bin(b64([0x00, 0x61, 0xff, 0x5c, 0x0a]), true))).toBe("\\x00a\\xff\\\\\\x0a");
  });

  it("makes control and direction-changing characters visible", () => {
    expect(displayBytes(bin("a\u202eb\u0000c\nd"))).toBe("a\\u202eb\\u0000c\\nd");
    expect(displayBytes(bin("line1\nline2\tx"), true)).toBe("line1\nline2\tx");
  });

  it("leaves markup as text (the DOM gets it as a text node)", () => {
    expect(displayBytes(bin("<script>alert(1)</script>"))).toBe("<script>alert(1)</script>");
  });

  it("percent-encodes keys for URLs byte by byte", () => {
    expect(binToUrl(bin("user:1"))).toBe("user%3A1");
    expect(binToUrl(bin("é"))).toBe("%C3%A9");
    expect(binToUrl(bin(b64([0x00, 0xff, 0x41]), true))).toBe("%00%FFA");
  });

  it("previews a 10 MB value briefly", () => {
    const huge = bin("\u0001".repeat(10 * 1024 * 1024));
    const p = preview(huge, 100);
    expect(p).toHaveLength(101);
    expect(p.startsWith("\\u0001")).toBe(true);
    expect(p.endsWith("…")).toBe(true);
  });

  it("formats TTLs", () => {
    expect(formatTtl(-1)).toBe("no TTL");
    expect(formatTtl(59_000)).toBe("59 s");
    expect(formatTtl(60_000)).toBe("1 m 0 s");
    expect(formatTtl(3_600_000 + 120_000)).toBe("1 h 2 m");
  });
});
