// A key's value, read-only: strings as escaped text, collections as virtualised rows, so a
// 100,000-field hash or a 10 MB string shows its start at once and never freezes the page.

import type { KeyDetail } from "../client/api";
import type { Bin } from "../lib/bytes";
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

function Cells({ label, rows, headers }: { label: string; rows: Bin[][]; headers: string[] }) {
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
      <p className="muted small">{rows.length.toLocaleString()} shown</p>
    </div>
  );
}
