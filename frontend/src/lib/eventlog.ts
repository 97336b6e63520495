// What the Live view keeps: the newest events first, never more than `capacity`, however fast
// they come. While paused, new events wait (also bounded) and are counted.

import type { FeedEvent } from "../client/feed";

export interface EventLogState {
  shown: FeedEvent[];
  held: FeedEvent[];
  /** Events that arrived while paused but no longer fit. */
  overflow: number;
  paused: boolean;
}

export const emptyLog: EventLogState = { shown: [], held: [], overflow: 0, paused: false };

export function addBatch(s: EventLogState, batch: FeedEvent[], capacity: number): EventLogState {
  if (batch.length === 0) return s;
  const newestFirst = batch.length > capacity ? batch.slice(-capacity).reverse() : batch.slice().reverse();
  if (s.paused) {
    const held = newestFirst.concat(s.held).slice(0, capacity);
    const overflow = s.overflow + (batch.length + s.held.length - held.length);
    return { ...s, held, overflow };
  }
  return { ...s, shown: newestFirst.concat(s.shown).slice(0, capacity) };
}

export function setPaused(s: EventLogState, paused: boolean, capacity: number): EventLogState {
  if (paused) return { ...s, paused: true };
  return { shown: s.held.concat(s.shown).slice(0, capacity), held: [], overflow: 0, paused: false };
}

/** Events per second over the last second, from (time, count) samples. */
export class RateMeter {
  private samples: { at: number; n: number }[] = [];
  add(at: number, n: number) {
    this.samples.push({ at, n });
  }
  rate(now: number): number {
    while (this.samples.length && (this.samples[0]?.at ?? now) <= now - 1000) this.samples.shift();
    return this.samples.reduce((sum, s) => sum + s.n, 0);
  }
}
