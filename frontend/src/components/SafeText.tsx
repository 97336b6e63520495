// Text from the server, shown safely: escaped (React text nodes, never markup), invisible and
// direction-changing characters made visible, and long text cut with a way to show more.

import { useState } from "react";
import { type Bin, displayBytes } from "../lib/bytes";

export const SHOW_CHARS = 64 * 1024;

interface Props {
  value: Bin;
  /** Keep newlines (values) or escape them (keys, one-line cells). */
  multiline?: boolean;
  /** Characters shown before "show more". */
  step?: number;
}

export function SafeText({ value, multiline = false, step = SHOW_CHARS }: Props) {
  const [shown, setShown] = useState(step);
  // Escape at most what is shown (plus a margin for escapes): a 10 MB value costs its first page.
  const head: Bin = value.b64 ? value : { text: value.text.slice(0, shown + 1), b64: false };
  const text = displayBytes(head, multiline);
  const cut = text.length > shown || (!value.b64 && value.text.length > shown);
  return (
    <>
      <span className={`safe${value.b64 ? " binary" : ""}`}>{cut ? text.slice(0, shown) : text}</span>
      {cut && (
        <button type="button" className="link more" onClick={() => setShown((n) => n + step)}>
          show more ({(Math.max(value.text.length, text.length) - shown).toLocaleString()} more characters)
        </button>
      )}
    </>
  );
}

export function KeyName({ value }: { value: Bin }) {
  return (
    <span className="keyname" title={value.b64 ? "binary key (shown as \\xNN escapes)" : undefined}>
      <SafeText value={value} step={512} />
    </span>
  );
}
