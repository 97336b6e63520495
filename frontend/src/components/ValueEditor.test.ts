// @vitest-environment node
import type { StreamEntry } from "../client/api";
import { bin } from "../lib/bytes";
import { emptyValue, isEditable, rowsToStream, streamRows } from "./ValueEditor";

describe("the stream editor's rows", () => {
  const entries: StreamEntry[] = [
    { id: "1-1", fields: [[bin("a"), bin("1")], [bin("b"), bin("2")]] },
    { id: "2-0", fields: [[bin("c"), bin("3")]] },
  ];

  it("put an entry's ID on its first row only, and read back the same entries", () => {
    const rows = streamRows(entries);
    expect(rows).toEqual([
      ["1-1", "a", "1"],
      ["", "b", "2"],
      ["2-0", "c", "3"],
    ]);
    expect(rowsToStream(rows)).toEqual(entries);
  });

  it("start an entry at every row with an ID, automatic ones included", () => {
    expect(rowsToStream([["", "a", "1"], ["*", "b", "2"], ["*", "c", "3"], ["", "d", "4"]])).toEqual([
      { id: "", fields: [[bin("a"), bin("1")]] },
      { id: "*", fields: [[bin("b"), bin("2")]] },
      { id: "*", fields: [[bin("c"), bin("3")], [bin("d"), bin("4")]] },
    ]);
    expect(rowsToStream([])).toEqual([]);
  });

  it("are editable unless a field or value is binary, and a new stream starts with one entry", () => {
    expect(isEditable({ type: "stream", value: entries })).toBe(true);
    expect(isEditable({ type: "stream", value: [{ id: "1-1", fields: [[bin("f"), bin("/w==", true)]] }] })).toBe(false);
    expect(emptyValue("stream")).toEqual({ type: "stream", value: [{ id: "*", fields: [[bin("field"), bin("value")]] }] });
  });
});
