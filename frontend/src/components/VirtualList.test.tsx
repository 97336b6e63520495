import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { MAX_SCROLL_PX, VirtualList, scrollGeometry } from "./VirtualList";

afterEach(cleanup);

describe("VirtualList", () => {
  it("renders only the rows in view of a million", () => {
    render(<VirtualList label="big" count={1_000_000} itemAt={(i) => `row ${i}`} rowHeight={30} rowKey={(s) => s} renderRow={(s) => s} />);
    const options = screen.getAllByRole("option");
    expect(options.length).toBeLessThan(60);
    expect(options[0]?.textContent).toBe("row 0");
  });

  it("scales the scrollbar past the browser's height limit and still reaches the last row", () => {
    const g = scrollGeometry(30_000_000, 480, MAX_SCROLL_PX - 480);
    expect(g.spacer).toBe(MAX_SCROLL_PX);
    expect(g.virtualTop + 480).toBeCloseTo(30_000_000, 0);
    expect(scrollGeometry(3000, 480, 100)).toEqual({ spacer: 3000, ratio: 1, virtualTop: 100 });
  });

  it("moves the selection with the keyboard", () => {
    const onSelect = vi.fn();
    const onActivate = vi.fn();
    render(<VirtualList label="l" items={["a", "b", "c"]} rowHeight={20} rowKey={(s) => s} renderRow={(s) => s} selectedIndex={1} onSelect={onSelect} onActivate={onActivate} />);
    const list = screen.getByRole("listbox");
    fireEvent.keyDown(list, { key: "ArrowDown" });
    fireEvent.keyDown(list, { key: "k" });
    fireEvent.keyDown(list, { key: "End" });
    fireEvent.keyDown(list, { key: "Home" });
    fireEvent.keyDown(list, { key: "Enter" });
    expect(onSelect.mock.calls.map((c) => c[0])).toEqual([2, 0, 2, 0]);
    expect(onActivate).toHaveBeenCalledWith(1);
  });

  it("asks for more when the end comes into view", () => {
    const onEndReached = vi.fn();
    render(<VirtualList label="l" items={["a", "b"]} rowHeight={20} rowKey={(s) => s} renderRow={(s) => s} onEndReached={onEndReached} />);
    expect(onEndReached).toHaveBeenCalled();
  });
});
