import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
import { bytesToBase64 } from "../lib/bytes";
import { fakeServer } from "../test/fakes";
import { renderWith } from "../test/render";
import { KeyPanel } from "./KeyPanel";

afterEach(cleanup);

function setup(detail: object, onDeleted = vi.fn()) {
  const { server, calls } = fakeServer((method, url, body) => {
    if (method === "GET" && url.pathname.startsWith("/api/v1/keys/")) return [200, detail];
    if (method === "PUT") return [200, { ...detail, ...(body as object) }];
    if (method === "DELETE") return [200, { deleted: 1 }];
    return undefined;
  });
  renderWith(server, <KeyPanel keyName={{ text: "k", b64: false }} version={0} onClose={vi.fn()} onRenamed={vi.fn()} onDeleted={onDeleted} />);
  return { calls };
}

const str = (value: string, extra: object = {}) => ({ key: "k", type: "string", ttl_ms: -1, slot: 7, node: "n1", size: value.length, value, truncated: false, ...extra });

describe("KeyPanel", () => {
  it("shows type, TTL, size, node and slot", async () => {
    setup(str("hello", { ttl_ms: 90_000 }));
    await screen.findByText("hello");
    expect(screen.getByText("1 m 30 s")).toBeTruthy();
    expect(screen.getByText("5 B")).toBeTruthy();
    expect(screen.getByText("7")).toBeTruthy();
  });

  it("saves an edited string with PUT, keeping the TTL", async () => {
    const { calls } = setup(str("old", { ttl_ms: 60_000 }));
    fireEvent.click(await screen.findByRole("button", { name: "Edit" }));
    fireEvent.change(screen.getByLabelText("value"), { target: { value: "new" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(calls.some((c) => c.method === "PUT")).toBe(true));
    expect(calls.find((c) => c.method === "PUT")?.body).toEqual({ type: "string", value: "new", ttl_ms: 60_000 });
  });

  it("deletes only after confirmation", async () => {
    const onDeleted = vi.fn();
    const { calls } = setup(str("x"), onDeleted);
    fireEvent.click(await screen.findByRole("button", { name: "Delete" }));
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    const dialog = screen.getByRole("alertdialog");
    fireEvent.click(dialog.querySelector("button.danger") as HTMLElement);
    await waitFor(() => expect(onDeleted).toHaveBeenCalled());
    expect(calls.filter((c) => c.method === "DELETE")).toHaveLength(1);
  });

  it("shows binary values escaped and read-only", async () => {
    setup(str(bytesToBase64(new Uint8Array([0x89, 0x50, 0x00])), { value_b64: true }));
    await screen.findByText("\\x89P\\x00");
    expect((screen.getByRole("button", { name: "Edit" }) as HTMLButtonElement).disabled).toBe(true);
  });

  it("cuts a huge string and shows more on request", async () => {
    setup(str("y".repeat(200_000)));
    const more = await screen.findByRole("button", { name: /show more/ });
    expect(document.querySelector(".value-string .safe")?.textContent).toHaveLength(64 * 1024);
    fireEvent.click(more);
    expect(document.querySelector(".value-string .safe")?.textContent).toHaveLength(128 * 1024);
  });

  it("offers to load more of a truncated collection and renders only visible rows", async () => {
    const fields = Array.from({ length: 1000 }, (_, i) => [`f${i}`, `v${i}`]);
    setup({ key: "k", type: "hash", ttl_ms: -1, slot: 1, node: "n1", size: 100_000, value: fields, truncated: true });
    await screen.findByRole("button", { name: "load more" });
    const rows = screen.getByRole("listbox", { name: "hash fields" }).querySelectorAll("[role=option]");
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(100);
  });

  it("shows a stream as a table of entry IDs and fields", async () => {
    const value = [
      { id: "1700000000000-0", fields: [["temp", "21.5"], ["room", "kitchen"]] },
      { id: "1700000000001-0", fields: [["temp", "22"]] },
    ];
    setup({ key: "k", type: "stream", ttl_ms: -1, slot: 1, node: "n1", encoding: "stream", size: 2, value, truncated: false });
    const table = await screen.findByRole("listbox", { name: "stream entries" });
    const rows = [...table.querySelectorAll("[role=option]")].map((r) => [...r.querySelectorAll(".cell")].map((c) => c.textContent));
    expect(rows).toEqual([
      ["1700000000000-0", "temp", "21.5"],
      ["", "room", "kitchen"],
      ["1700000000001-0", "temp", "22"],
    ]);
    expect(screen.getByText("2 entries")).toBeTruthy();
    expect(screen.getByText("2 entries shown")).toBeTruthy();
  });

  it("edits a stream: a new row without an ID adds a field to the entry above", async () => {
    const value = [{ id: "1-1", fields: [["f", "v"]] }];
    const { calls } = setup({ key: "k", type: "stream", ttl_ms: -1, slot: 1, node: "n1", size: 1, value, truncated: false });
    fireEvent.click(await screen.findByRole("button", { name: "Edit" }));
    expect((screen.getByLabelText("id 1") as HTMLInputElement).value).toBe("1-1");
    fireEvent.click(screen.getByRole("button", { name: "add entry" }));
    fireEvent.change(screen.getByLabelText("id 2"), { target: { value: "" } });
    fireEvent.change(screen.getByLabelText("field 2"), { target: { value: "g" } });
    fireEvent.change(screen.getByLabelText("value 2"), { target: { value: "w" } });
    fireEvent.click(screen.getByRole("button", { name: "add entry" }));
    fireEvent.change(screen.getByLabelText("field 3"), { target: { value: "h" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(calls.some((c) => c.method === "PUT")).toBe(true));
    expect(calls.find((c) => c.method === "PUT")?.body).toEqual({
      type: "stream",
      value: [
        { id: "1-1", fields: [["f", "v"], ["g", "w"]] },
        { id: "*", fields: [["h", ""]] },
      ],
    });
  });

  it("explains refused writes and takes a token", async () => {
    const { server } = fakeServer((method) =>
      method === "GET" ? [200, str("v")] : [403, { error: { code: "writes_disabled", message: "HTTP writes are disabled" } }],
    );
    renderWith(server, <KeyPanel keyName={{ text: "k", b64: false }} version={0} onClose={vi.fn()} onRenamed={vi.fn()} onDeleted={vi.fn()} />);
    fireEvent.click(await screen.findByRole("button", { name: "Delete" }));
    fireEvent.click(screen.getByRole("alertdialog").querySelector("button.danger") as HTMLElement);
    await screen.findByText(/refuses writes/);
    fireEvent.change(screen.getByLabelText("token"), { target: { value: "t0k" } });
    fireEvent.click(screen.getByRole("button", { name: "Use token" }));
    expect(server.api.hasToken).toBe(true);
  });
});
