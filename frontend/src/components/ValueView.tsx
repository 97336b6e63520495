// A key's value, read-only: strings as escaped text, collections (stream entries included) as
// virtualised rows, so a 100,000-field hash or a 10 MB string shows its start at once and never
// freezes the page.

import type { KeyDetail } from "../client/api";
import { type Bin, bin } from "../lib/bytes";
import { SafeText } from "./SafeText";
import { VirtualList } from "./VirtualList";

interface Props {
  detail: KeyDetail;
  onLoadMore: () => void;
}

export function ValueView({ detail, onLoadMore }: Props) {
  const { data } = detail;
  let body;
  switch (data.type) {
    case "string":
      body = (
        <pre className="value-string">
          <SafeText value={data.value} multiline />
        </pre>
      );
      break;
    case "hash":
      body = <Cells label="hash fields" rows={data.value.map(([f, v]) => [f, v])} headers={["field", "value"]} />;
      break;
    case "list":
      body = <Cells label="list items" rows={data.value.map((x, i) => [{ text: String(i), b64: false }, x])} headers={["index", "item"]} />;
      break;
    case "set":
      body = <Cells label="set members" rows={data.value.map((x) => [x])} headers={["member"]} />;
      break;
    case "zset":
      body = (
        <Cells
          label="sorted set members"
          rows={data.value.map(([m, s]) => [m, { text: String(s), b64: false }])}
          headers={["member", "score"]}
        />
      );
      break;
    case "stream":
      // One row per field; an entry's ID heads its first row.
      body = (
        <Cells
          label="stream entries"
          rows={data.value.flatMap((e) => (e.fields.length ? e.fields : NO_FIELDS).map(([f, v], i) => [i === 0 ? bin(e.id) : NONE, f, v]))}
          headers={["id", "field", "value"]}
          shown={`${data.value.length.toLocaleString()} entries`}
        />
      );
      break;
    default:
      body = (
        <pre className="value-string">
          <SafeText value={{ text: data.value, b64: false }} multiline />
        </pre>
      );
  }
  return (
    <div className="value-view">
      {body}
      {detail.truncated && (
        <p className="truncated">
          Only the start of this value was loaded.{" "}
          <button type="button" onClick={onLoadMore}>
            load more
          </button>
        </p>
      )}
    </div>
  );
}

const NONE: Bin = bin("");
/** An entry without fields (XADD needs one; never seen in practice) still shows its ID. */
const NO_FIELDS: [Bin, Bin][] = [[NONE, NONE]];

function Cells({ label, rows, headers, shown }: { label: string; rows: Bin[][]; headers: string[]; shown?: string }) {
  return (
    <div className="cells">
      <div className="cells-head" style={{ gridTemplateColumns: `repeat(${headers.length}, minmax(0, 1fr))` }}>
        {headers.map((h) => (
          <span key={h}>{h}</span>
        ))}
      </div>
      <VirtualList
        label={label}
        items={rows}
        rowHeight={26}
        rowKey={(_, i) => String(i)}
        className="cells-list"
        renderRow={(row) => (
          <div className="cells-row" style={{ gridTemplateColumns: `repeat(${headers.length}, minmax(0, 1fr))` }}>
            {row.map((cell, c) => (
              <span key={c} className="cell">
                <SafeText value={cell} step={300} />
              </span>
            ))}
          </div>
        )}
      />
      <p className="muted small">{shown ?? rows.length.toLocaleString()} shown</p>
    </div>
  );
}
