import { cleanup, render } from "@testing-library/react";
import { parseClusterNode } from "../client/api";
import { SlotMap, countSlots, slotOwners, slotRuns } from "./SlotMap";

afterEach(cleanup);

const nodes = [
  parseClusterNode({ id: "a", addr: "n1", slots: [[0, 5460]] }),
  parseClusterNode({ id: "b", addr: "n2", slots: [[5461, 10922]] }),
  parseClusterNode({ id: "c", addr: "n3", slots: [[10923, 16383]] }),
];

describe("SlotMap", () => {
  it("gives every slot its owner", () => {
    const owners = slotOwners(nodes);
    expect([owners[0], owners[5460], owners[5461], owners[16383]]).toEqual([0, 0, 1, 2]);
    expect([0, 1, 2].map((i) => countSlots(owners, i))).toEqual([5461, 5462, 5461]);
  });

  it("draws runs, not 16384 cells", () => {
    const runs = slotRuns(slotOwners(nodes));
    expect(runs.length).toBeLessThan(300);
    expect(runs.reduce((n, r) => n + r.len, 0)).toBe(16384);
  });

  it("colours three owners and marks moving slots", () => {
    const { container } = render(<SlotMap nodes={nodes} moving={[{ slot: 42, from: "a", to: "b", keysMoved: 3 }]} />);
    const owners = new Set([...container.querySelectorAll("rect[data-owner]")].map((r) => r.getAttribute("data-owner")));
    expect(owners).toEqual(new Set(["0", "1", "2"]));
    expect(container.querySelectorAll("rect.moving")).toHaveLength(1);
    expect(container.textContent).toContain("1 moving");
  });

  it("shows unassigned slots as such", () => {
    const { container } = render(<SlotMap nodes={[parseClusterNode({ id: "a", slots: [[0, 99]] })]} moving={[]} />);
    expect(container.querySelector('rect[data-owner="-1"]')).not.toBeNull();
  });
});
