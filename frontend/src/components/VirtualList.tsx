// A list that renders only the rows in view (fixed row height), so a million keys or a
// 100,000-field hash scroll as fast as twenty. Browsers cap an element's height (≈ 17 M px in
// Firefox), so past MAX_SCROLL_PX the scrollbar is scaled: scroll position maps to a row by
// proportion. Arrow keys, j/k, Page Up/Down, Home and End move the selection.

import { type KeyboardEvent, type ReactNode, useCallback, useEffect, useRef, useState } from "react";

export const MAX_SCROLL_PX = 8_000_000;

interface Props<T> {
  /** The rows, as an array or as a count and an accessor (for lists that are not arrays). */
  items?: readonly T[];
  count?: number;
  itemAt?: (index: number) => T | undefined;
  rowHeight: number;
  renderRow: (item: T, index: number, selected: boolean) => ReactNode;
  rowKey: (item: T, index: number) => string;
  selectedIndex?: number;
  onSelect?: (index: number) => void;
  onActivate?: (index: number) => void;
  /** Called when the last rows come into view (load the next page). */
  onEndReached?: () => void;
  /** The rows now rendered (first inclusive, last exclusive). */
  onRangeChange?: (first: number, last: number) => void;
  label: string;
  className?: string;
  /** Rows rendered above and below the visible ones. */
  overscan?: number;
}

/** Where the viewport is in row space, for a list of `total` px shown in `height` px. */
export function scrollGeometry(total: number, height: number, scrollTop: number) {
  const spacer = Math.min(total, MAX_SCROLL_PX);
  const ratio = spacer > height && total > spacer ? (total - height) / (spacer - height) : 1;
  return { spacer, ratio, virtualTop: scrollTop * ratio };
}

export function VirtualList<T>({
  items,
  count,
  itemAt,
  rowHeight,
  renderRow,
  rowKey,
  selectedIndex = -1,
  onSelect,
  onActivate,
  onEndReached,
  onRangeChange,
  label,
  className,
  overscan = 8,
}: Props<T>) {
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(480);
  const length = count ?? items?.length ?? 0;
  const get = (i: number): T | undefined => (itemAt ? itemAt(i) : items?.[i]);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => setHeight(el.clientHeight || 480);
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const { spacer, ratio, virtualTop } = scrollGeometry(length * rowHeight, height, scrollTop);
  const first = Math.max(0, Math.floor(virtualTop / rowHeight) - overscan);
  const last = Math.min(length, Math.ceil((virtualTop + height) / rowHeight) + overscan);

  useEffect(() => {
    if (onEndReached && length > 0 && last >= length - overscan) onEndReached();
  }, [last, length, onEndReached, overscan]);

  useEffect(() => {
    onRangeChange?.(first, last);
  }, [first, last, onRangeChange]);

  const scrollIntoView = useCallback(
    (index: number) => {
      const el = ref.current;
      if (!el) return;
      const view = el.clientHeight || height;
      const top = index * rowHeight;
      const current = el.scrollTop * ratio;
      if (top < current) el.scrollTop = top / ratio;
      else if (top + rowHeight > current + view) el.scrollTop = (top + rowHeight - view) / ratio;
    },
    [rowHeight, height, ratio],
  );

  const onKeyDown = (e: KeyboardEvent) => {
    if (!onSelect || length === 0) return;
    const page = Math.max(1, Math.floor(height / rowHeight) - 1);
    const moves: Record<string, number> = {
      ArrowDown: selectedIndex + 1,
      ArrowUp: selectedIndex - 1,
      j: selectedIndex + 1,
      k: selectedIndex - 1,
      PageDown: selectedIndex + page,
      PageUp: selectedIndex - page,
      Home: 0,
      End: length - 1,
    };
    const to = moves[e.key];
    if (to !== undefined) {
      e.preventDefault();
      const index = Math.max(0, Math.min(length - 1, to));
      onSelect(index);
      scrollIntoView(index);
    } else if (e.key === "Enter" && onActivate && selectedIndex >= 0) {
      e.preventDefault();
      onActivate(selectedIndex);
    }
  };

  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    const item = get(i);
    if (item === undefined) continue;
    const selected = i === selectedIndex;
    rows.push(
      <div
        key={rowKey(item, i)}
        role="option"
        aria-selected={selected}
        className={`vrow${selected ? " selected" : ""}`}
        // Rows sit where they belong in the viewport, whatever the scrollbar's scale.
        style={{ position: "absolute", top: i * rowHeight - virtualTop + scrollTop, height: rowHeight, left: 0, right: 0 }}
        onClick={() => {
          onSelect?.(i);
          onActivate?.(i);
        }}
      >
        {renderRow(item, i, selected)}
      </div>,
    );
  }

  return (
    <div
      ref={ref}
      role="listbox"
      aria-label={label}
      tabIndex={0}
      className={`vlist ${className ?? ""}`}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      onKeyDown={onKeyDown}
    >
      <div style={{ position: "relative", height: spacer }}>{rows}</div>
    </div>
  );
}
