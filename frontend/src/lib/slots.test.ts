import { SLOTS, slotOwners } from "./slots";

describe("slotOwners", () => {
  it("maps every slot of a range to the master serving it", () => {
    const owners = slotOwners([
      { id: "a", role: "master", slots: [[0, 5460]] },
      { id: "b", role: "master", slots: [[5461, 10922], [16000, 16383]] },
      { id: "r", role: "replica", slots: [[0, 16383]] },
    ]);
    expect(owners.length).toBe(SLOTS);
    expect(owners[0]).toBe("a");
    expect(owners[5460]).toBe("a");
    expect(owners[5461]).toBe("b");
    expect(owners[10922]).toBe("b");
    expect(owners[10923]).toBeUndefined();
    expect(owners[16383]).toBe("b");
  });

  it("ignores ranges outside the slot space", () => {
    const owners = slotOwners([{ id: "a", role: "master", slots: [[16380, 20000]] }]);
    expect(owners.length).toBe(SLOTS);
    expect(owners[16383]).toBe("a");
  });
});
