// Editing a key's value: a text area for strings, rows for hashes, lists, sets, sorted sets and
// streams. Only text values are editable here; binary ones are shown read-only by ValueView.

import { type KeyValue, type StreamEntry, readScore } from "../client/api";
import { type Bin, bin } from "../lib/bytes";

interface Props {
  value: KeyValue;
  onChange: (v: KeyValue) => void;
}

export function isEditable(v: KeyValue): boolean {
  switch (v.type) {
    case "string":
      return !v.value.b64;
    case "hash":
      return v.value.every(([f, x]) => !f.b64 && !x.b64);
    case "list":
    case "set":
      return v.value.every((x) => !x.b64);
    case "zset":
      return v.value.every(([m]) => !m.b64);
    case "stream":
      return v.value.every((e) => e.fields.every(([f, x]) => !f.b64 && !x.b64));
    default:
      return false;
  }
}

export function emptyValue(type: string): KeyValue {
  switch (type) {
    case "hash":
      return { type: "hash", value: [[bin("field"), bin("value")]] };
    case "list":
      return { type: "list", value: [bin("item")] };
    case "set":
      return { type: "set", value: [bin("member")] };
    case "zset":
      return { type: "zset", value: [[bin("member"), 1]] };
    case "stream":
      return { type: "stream", value: [{ id: "*", fields: [[bin("field"), bin("value")]] }] };
    default:
      return { type: "string", value: bin("") };
  }
}

export function ValueEditor({ value, onChange }: Props) {
  switch (value.type) {
    case "string":
      return (
        <textarea
          className="value-edit"
          aria-label="value"
          value={value.value.text}
          onChange={(e) => onChange({ type: "string", value: bin(e.target.value) })}
          rows={8}
        />
      );
    case "hash":
      return (
        <Rows
          headers={["field", "value"]}
          rows={value.value.map(([f, v]) => [f.text, v.text])}
          blank={["", ""]}
          onChange={(rows) => onChange({ type: "hash", value: rows.map(([f, v]) => [bin(f ?? ""), bin(v ?? "")]) })}
        />
      );
    case "list":
    case "set": {
      const type = value.type;
      return (
        <Rows
          headers={[type === "list" ? "item" : "member"]}
          rows={value.value.map((x: Bin) => [x.text])}
          blank={[""]}
          onChange={(rows) => onChange({ type, value: rows.map(([x]) => bin(x ?? "")) })}
        />
      );
    }
    case "zset":
      return (
        <Rows
          headers={["member", "score"]}
          rows={value.value.map(([m, s]) => [m.text, String(s)])}
          blank={["", "0"]}
          onChange={(rows) =>
            onChange({ type: "zset", value: rows.map(([m, s]) => [bin(m ?? ""), readScore((s ?? "0").trim() || "0") || 0]) })
          }
        />
      );
    case "stream":
      return (
        <>
          <Rows
            headers={["id", "field", "value"]}
            rows={streamRows(value.value)}
            blank={["*", "", ""]}
            addLabel="add entry"
            onChange={(rows) => onChange({ type: "stream", value: rowsToStream(rows) })}
          />
          <p className="muted small">
            A row with an ID starts an entry (<code>*</code> lets the node pick the ID); a row with an empty ID adds a field to the entry above. IDs must
            increase. Saving rewrites the stream, dropping its consumer groups.
          </p>
        </>
      );
    default:
      return <p className="muted">This type cannot be edited here.</p>;
  }
}

/** A stream as editor rows `[id, field, value]`: one per field, the ID on an entry's first. */
export function streamRows(entries: StreamEntry[]): string[][] {
  return entries.flatMap((e) => (e.fields.length ? e.fields : ([[bin(""), bin("")]] as [Bin, Bin][])).map(([f, v], i) => [i === 0 ? e.id : "", f.text, v.text]));
}

/**
 * Editor rows back to entries: a row with an ID (`*` included) starts an entry, a row without
 * one adds its field to the entry above (the first row always starts one: no ID, the node's).
 */
export function rowsToStream(rows: string[][]): StreamEntry[] {
  const entries: StreamEntry[] = [];
  for (const [id = "", f = "", v = ""] of rows) {
    const last = entries[entries.length - 1];
    if (id !== "" || !last) entries.push({ id, fields: [[bin(f), bin(v)]] });
    else last.fields.push([bin(f), bin(v)]);
  }
  return entries;
}

function Rows({
  headers,
  rows,
  blank,
  addLabel,
  onChange,
}: {
  headers: string[];
  rows: string[][];
  blank: string[];
  addLabel?: string;
  onChange: (rows: string[][]) => void;
}) {
  const set = (r: number, c: number, text: string) =>
    onChange(rows.map((row, i) => (i === r ? row.map((cell, j) => (j === c ? text : cell)) : row)));
  return (
    <div className="rows-edit">
      <table>
        <thead>
          <tr>
            {headers.map((h) => (
              <th key={h}>{h}</th>
            ))}
            <th aria-label="remove" />
          </tr>
        </thead>
        <tbody>
          {rows.map((row, r) => (
            <tr key={r}>
              {row.map((cell, c) => (
                <td key={c}>
                  <input aria-label={`${headers[c]} ${r + 1}`} value={cell} onChange={(e) => set(r, c, e.target.value)} />
                </td>
              ))}
              <td>
                <button type="button" className="icon" aria-label={`remove row ${r + 1}`} onClick={() => onChange(rows.filter((_, i) => i !== r))}>
                  ×
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={() => onChange([...rows, blank])}>
        {addLabel ?? `add ${headers[0]}`}
      </button>
    </div>
  );
}
