// The Keys view's rows: what SCAN returned, in order, plus keys the live feed announced since
// (shown first). Sized for a million keys: lookups by key go through an index, pages append
// without copying, and applying a batch of events costs the batch, not the list.

import type { KeySummary } from "../client/api";
import type { FeedEvent } from "../client/feed";
import { binId } from "./bytes";

export interface KeyRow extends KeySummary {
  gone: boolean;
}

/** Events after which the key no longer exists under that name. */
export const GONE_EVENTS = new Set(["del", "expired", "evicted", "rename_from", "unlink"]);

/** Most feed-announced keys kept at the top of the list. */
const MAX_FRESH = 10_000;

export class KeyList {
  private scanned: KeyRow[] = [];
  private fresh: KeyRow[] = [];
  private readonly rows = new Map<string, KeyRow>();
  private readonly scannedIndex = new Map<string, number>();

  clear() {
    this.scanned = [];
    this.fresh = [];
    this.rows.clear();
    this.scannedIndex.clear();
  }

  get length(): number {
    return this.fresh.length + this.scanned.length;
  }

  at(i: number): KeyRow | undefined {
    return i < this.fresh.length ? this.fresh[i] : this.scanned[i - this.fresh.length];
  }

  get(id: string): KeyRow | undefined {
    return this.rows.get(id);
  }

  indexOf(id: string): number {
    const row = this.rows.get(id);
    if (!row) return -1;
    const s = this.scannedIndex.get(id);
    if (s !== undefined) return this.fresh.length + s;
    return this.fresh.indexOf(row);
  }

  /** Adds a SCAN page; keys already listed (SCAN may repeat them) are skipped. */
  appendScanned(keys: KeySummary[]): number {
    let added = 0;
    for (const k of keys) {
      const id = binId(k.key);
      if (this.rows.has(id)) continue;
      const row: KeyRow = { ...k, gone: false };
      this.rows.set(id, row);
      this.scannedIndex.set(id, this.scanned.length);
      this.scanned.push(row);
      added++;
    }
    return added;
  }

  /**
   * Applies the last event per key: marks removed keys, revives re-created ones and, when
   * `admitNew`, lists keys not seen before. Returns the ids whose rows changed.
   */
  applyEvents(lastByKey: Map<string, FeedEvent>, admitNew: boolean): string[] {
    const changed: string[] = [];
    const added: KeyRow[] = [];
    for (const [id, e] of lastByKey) {
      const gone = GONE_EVENTS.has(e.event);
      const row = this.rows.get(id);
      if (row) {
        row.gone = gone;
        changed.push(id);
      } else if (!gone && admitNew) {
        const fresh: KeyRow = { key: e.key, type: "…", ttlMs: -1, slot: null, node: e.node || null, gone: false };
        this.rows.set(id, fresh);
        added.push(fresh);
        changed.push(id);
      }
    }
    if (added.length) {
      this.fresh = added.reverse().concat(this.fresh);
      for (const dropped of this.fresh.splice(MAX_FRESH)) this.rows.delete(binId(dropped.key));
    }
    return changed;
  }

  /** Everything the list knows was deleted: flushdb/flushall. */
  markAllGone() {
    for (const row of this.rows.values()) row.gone = true;
  }

  update(id: string, change: Partial<KeySummary>) {
    const row = this.rows.get(id);
    if (row) Object.assign(row, change);
  }
}
