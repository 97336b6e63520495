// Which node serves each of the cluster's 16384 slots, from the slot ranges the cluster view
// reports: the key list shows a key's node by its slot, so a key that moves with its slot
// (automatic distribution) shows its new node as soon as the slot changes hands.

export const SLOTS = 16384;

/** The id of the master serving each slot (undefined where none does). */
export function slotOwners(nodes: { id: string; role: string; slots: [number, number][] }[]): (string | undefined)[] {
  const owners: (string | undefined)[] = new Array(SLOTS).fill(undefined);
  for (const n of nodes) {
    if (n.role !== "master") continue;
    for (const [a, b] of n.slots) {
      for (let s = Math.max(0, a); s <= Math.min(b, SLOTS - 1); s++) owners[s] = n.id;
    }
  }
  return owners;
}
