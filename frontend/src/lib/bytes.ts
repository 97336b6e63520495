// Keys, members and values are bytes. On the wire (docs/api.md "Bytes in JSON") they arrive as a
// UTF-8 string, or as base64 with a companion flag when they are not valid UTF-8. Here they are
// one type, `Bin`, and every place that shows one goes through `displayBytes`, which escapes
// what a person cannot see or should not trust (control characters, bidi overrides) and
// never hands anything to the DOM as markup.

/** Bytes as the API sent them: text when valid UTF-8, else base64. */
export interface Bin {
  readonly text: string;
  readonly b64: boolean;
}

export const bin = (text: string, b64 = false): Bin => ({ text, b64 });

/** A stable identity for maps and React keys: binary and text never collide. */
export function binId(b: Bin): string {
  return (b.b64 ? "b:" : "t:") + b.text;
}

export function sameBin(a: Bin, b: Bin): boolean {
  return a.b64 === b.b64 && a.text === b.text;
}

export function base64ToBytes(b64: string): Uint8Array {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let raw = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    raw += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(raw);
}

export function binBytes(b: Bin): Uint8Array {
  return b.b64 ? base64ToBytes(b.text) : new TextEncoder().encode(b.text);
}

/** The number of bytes the value has on the server. */
export function binLength(b: Bin): number {
  return b.b64 ? base64ToBytes(b.text).length : new TextEncoder().encode(b.text).length;
}

/**
 * A key in a URL path: every byte percent-encoded as needed (`/api/v1/keys/user%3A1`), so binary
 * keys reach the server unchanged.
 */
export function binToUrl(b: Bin): string {
  if (!b.b64) return encodeURIComponent(b.text);
  let out = "";
  for (const byte of base64ToBytes(b.text)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

const HEX = (n: number) => n.toString(16).padStart(2, "0");

// Characters that would let a value rearrange or hide what is shown around it.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * Text safe to show: non-UTF-8 bytes as `\xNN` (as redis-cli prints them), control and
 * direction-changing characters as `\uNNNN`. Newlines and tabs stay when `multiline`.
 */
export function displayBytes(b: Bin, multiline = false): string {
  if (b.b64) {
    let out = "";
    for (const byte of base64ToBytes(b.text)) {
      if (byte === 0x0a && multiline) out += "\n";
      else if (byte >= 0x20 && byte < 0x7f) out += byte === 0x5c ? "\\\\" : String.fromCharCode(byte);
      else out += "\\x" + HEX(byte);
    }
    return out;
  }
  return b.text.replace(INVISIBLE, (c) => {
    if (multiline && (c === "\n" || c === "\t")) return c;
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
  });
}

/** At most `max` characters of `s`, and whether something was cut. */
export function truncate(s: string, max: number): { text: string; cut: boolean } {
  if (s.length <= max) return { text: s, cut: false };
  return { text: s.slice(0, max), cut: true };
}

/** A one-line preview for lists: escaped, newlines shown, cut to `max` characters. */
export function preview(b: Bin, max = 120): string {
  // Escape only what will be shown: a 10 MB value costs no more than its first characters.
  const head: Bin = b.b64 ? b : { text: b.text.slice(0, max + 1), b64: false };
  const { text, cut } = truncate(displayBytes(head), max);
  return cut ? text + "…" : text;
}

/** Reads a wire value: a string, or `{b64}` / `{value, value_b64}` / `{text, b64}` objects. */
export function readBin(raw: unknown, b64Flag?: unknown): Bin {
  if (typeof raw === "string") return { text: raw, b64: b64Flag === true };
  if (typeof raw === "number") return { text: String(raw), b64: false };
  if (raw && typeof raw === "object") {
    const o = raw as Record<string, unknown>;
    if (typeof o.b64 === "string") return { text: o.b64, b64: true };
    if (typeof o.base64 === "string") return { text: o.base64, b64: true };
    if (typeof o.value === "string") return { text: o.value, b64: o.value_b64 === true };
    if (typeof o.text === "string") return { text: o.text, b64: o.b64 === true };
  }
  return { text: "", b64: false };
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** `ttl_ms` as people read it: "no TTL", "59 s", "3 h 2 m". */
export function formatTtl(ms: number): string {
  if (ms < 0) return "no TTL";
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
