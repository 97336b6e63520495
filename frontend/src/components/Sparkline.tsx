// A small line chart in plain SVG: the last N samples of one number, its current value and range.

interface Props {
  title: string;
  values: number[];
  format: (v: number) => string;
  color?: string;
  range?: [number, number];
}

const W = 240;
const H = 60;

/**
 * The chart's path. The vertical range is the data's own (padded), so small changes in a large
 * number stay visible; `range` fixes it instead (a ratio is drawn on 0..1).
 */
export function sparkPath(values: number[], range?: [number, number]): string {
  if (values.length === 0) return "";
  let [lo, hi] = range ?? [Math.min(...values), Math.max(...values)];
  if (!range) {
    const pad = Math.max((hi - lo) * 0.15, Math.abs(hi) * 0.02, 1e-9);
    lo = Math.max(0, lo - pad);
    hi += pad;
  }
  const span = hi - lo || 1;
  const step = values.length > 1 ? W / (values.length - 1) : 0;
  return values
    .map((v, i) => `${i === 0 ? "M" : "L"}${(i * step).toFixed(1)},${(H - 2 - ((v - lo) / span) * (H - 4)).toFixed(1)}`)
    .join(" ");
}

export function Sparkline({ title, values, format, color = "var(--accent)", range }: Props) {
  const current = values[values.length - 1];
  const peak = values.length ? Math.max(...values) : 0;
  return (
    <figure className="spark">
      <figcaption>
        <span title={title}>{title}</span>
        <strong>{current === undefined ? "–" : format(current)}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`${title}: ${current === undefined ? "no data" : format(current)}`}>
        <path d={sparkPath(values, range)} fill="none" stroke={color} strokeWidth="2" vectorEffect="non-scaling-stroke" />
      </svg>
      <small className="muted">peak {format(peak)}</small>
    </figure>
  );
}
