// A list that renders only the rows in view (fixed row height), so a million keys or a
// 100,000-field hash scroll as fast as twenty. Arrow keys, Page Up/Down, Home and End move the
// selection; the list scrolls to keep it visible.

import { type KeyboardEvent, type ReactNode, useCallback, useEffect, useRef, useState } from "react";

interface Props<T> {
  items: readonly T[];
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

export function VirtualList<T>({
  items,
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

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(items.length, Math.ceil((scrollTop + height) / rowHeight) + overscan);

  useEffect(() => {
    if (onEndReached && items.length > 0 && last >= items.length - overscan) onEndReached();
  }, [last, items.length, onEndReached, overscan]);

  useEffect(() => {
    onRangeChange?.(first, last);
  }, [first, last, onRangeChange]);

  const scrollIntoView = useCallback(
    (index: number) => {
      const el = ref.current;
      if (!el) return;
      const top = index * rowHeight;
      if (top < el.scrollTop) el.scrollTop = top;
      else if (top + rowHeight > el.scrollTop + (el.clientHeight || height)) el.scrollTop = top + rowHeight - (el.clientHeight || height);
    },
    [rowHeight, height],
  );

  const onKeyDown = (e: KeyboardEvent) => {
    if (!onSelect || items.length === 0) return;
    const page = Math.max(1, Math.floor(height / rowHeight) - 1);
    const moves: Record<string, number> = {
      ArrowDown: selectedIndex + 1,
      ArrowUp: selectedIndex - 1,
      j: selectedIndex + 1,
      k: selectedIndex - 1,
      PageDown: selectedIndex + page,
      PageUp: selectedIndex - page,
      Home: 0,
      End: items.length - 1,
    };
    const to = moves[e.key];
    if (to !== undefined) {
      e.preventDefault();
      const index = Math.max(0, Math.min(items.length - 1, to));
      onSelect(index);
      scrollIntoView(index);
    } else if (e.key === "Enter" && onActivate && selectedIndex >= 0) {
      e.preventDefault();
      onActivate(selectedIndex);
    }
  };

  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    const item = items[i] as T;
    const selected = i === selectedIndex;
    rows.push(
      <div
        key={rowKey(item, i)}
        role="option"
        aria-selected={selected}
        className={`vrow${selected ? " selected" : ""}`}
        style={{ position: "absolute", top: i * rowHeight, height: rowHeight, left: 0, right: 0 }}
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
      <div style={{ position: "relative", height: items.length * rowHeight }}>{rows}</div>
    </div>
  );
}
