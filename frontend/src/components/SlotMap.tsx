// The 16384 hash slots as a 128 × 128 grid coloured by owning node, with slots that are moving
// between nodes outlined. Runs of slots with one owner on a grid row are one SVG rectangle, so
// the map is a few hundred elements, not 16384.

import type { ClusterNode, SlotMove } from "../client/api";

export const SLOTS = 16384;
const COLS = 128;
const CELL = 4;

const PALETTE = ["#2f7ed8", "#e4572e", "#29a36a", "#a05bd6", "#f0a202", "#17a2b8", "#d6336c", "#6c757d", "#8bc34a", "#795548"];

export function nodeColor(index: number): string {
  return PALETTE[index % PALETTE.length] ?? "#888";
}

/** For each slot, the index of its owner in `nodes`, or -1. */
export function slotOwners(nodes: ClusterNode[]): Int16Array {
  const owners = new Int16Array(SLOTS).fill(-1);
  nodes.forEach((n, i) => {
    for (const [from, to] of n.slots) {
      for (let s = Math.max(0, from); s <= Math.min(SLOTS - 1, to); s++) owners[s] = i;
    }
  });
  return owners;
}

interface Run {
  row: number;
  col: number;
  len: number;
  owner: number;
  first: number;
}

export function slotRuns(owners: Int16Array): Run[] {
  const runs: Run[] = [];
  for (let row = 0; row < SLOTS / COLS; row++) {
    let col = 0;
    while (col < COLS) {
      const first = row * COLS + col;
      const owner = owners[first] ?? -1;
      let len = 1;
      while (col + len < COLS && owners[first + len] === owner) len++;
      runs.push({ row, col, len, owner, first });
      col += len;
    }
  }
  return runs;
}

interface Props {
  nodes: ClusterNode[];
  moving: SlotMove[];
}

export function SlotMap({ nodes, moving }: Props) {
  const owners = slotOwners(nodes);
  const runs = slotRuns(owners);
  const label = (i: number) => (i < 0 ? "unassigned" : (nodes[i]?.addr ?? "?"));
  return (
    <figure className="slot-map">
      <svg
        viewBox={`0 0 ${COLS * CELL} ${(SLOTS / COLS) * CELL}`}
        role="img"
        aria-label={`slot map: ${nodes.map((n, i) => `${n.addr} ${countSlots(owners, i)} slots`).join(", ")}`}
        preserveAspectRatio="xMidYMid meet"
        shapeRendering="crispEdges"
      >
        {runs.map((r) => (
          <rect
            key={r.first}
            x={r.col * CELL}
            y={r.row * CELL}
            width={r.len * CELL}
            height={CELL}
            fill={r.owner < 0 ? "var(--unassigned)" : nodeColor(r.owner)}
            data-owner={r.owner}
          >
            <title>{`slots ${r.first}–${r.first + r.len - 1}: ${label(r.owner)}`}</title>
          </rect>
        ))}
        {moving.map((m) => (
          <rect
            key={`m${m.slot}`}
            className="moving"
            x={(m.slot % COLS) * CELL}
            y={Math.floor(m.slot / COLS) * CELL}
            width={CELL}
            height={CELL}
          >
            <title>{`slot ${m.slot} moving: ${m.keysMoved} keys moved`}</title>
          </rect>
        ))}
      </svg>
      <figcaption className="legend">
        <h3>16,384 slots by owner</h3>
        {nodes.map((n, i) => (
          <span key={n.id} className="legend-item">
            <i style={{ background: nodeColor(i) }} /> {n.addr || n.id} · {countSlots(owners, i).toLocaleString()} slots
          </span>
        ))}
        {moving.length > 0 && (
          <span className="legend-item">
            <i className="moving-swatch" /> {moving.length} moving: {moving.slice(0, 5).map((m) => m.slot).join(", ")}
            {moving.length > 5 && "…"}
          </span>
        )}
      </figcaption>
    </figure>
  );
}

export function countSlots(owners: Int16Array, owner: number): number {
  let n = 0;
  for (const o of owners) if (o === owner) n++;
  return n;
}
