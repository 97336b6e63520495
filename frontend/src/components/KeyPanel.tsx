// The selected key: its type, TTL, size, owning node and slot, its value, and what can be done
// to it (edit, rename, set TTL, delete). It reloads when the live feed says the key changed.

import { useCallback, useEffect, useState } from "react";
import { ApiError, type KeyDetail, type KeyValue } from "../client/api";
import { useServer } from "../client/server";
import { type Bin, bin, formatBytes, formatTtl } from "../lib/bytes";
import { Confirm } from "./Confirm";
import { KeyName } from "./SafeText";
import { ValueEditor, isEditable } from "./ValueEditor";
import { ValueView } from "./ValueView";

const FIRST_LIMIT = 1000;

interface Props {
  keyName: Bin;
  /** Bumped by the browser when the feed reports a change to this key. */
  version: number;
  onClose: () => void;
  onRenamed: (to: Bin) => void;
  onDeleted: () => void;
}

type Mode = "view" | "edit" | "rename" | "ttl" | "delete";

export function KeyPanel({ keyName, version, onClose, onRenamed, onDeleted }: Props) {
  const { api } = useServer();
  const [detail, setDetail] = useState<KeyDetail | null>(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [limit, setLimit] = useState(FIRST_LIMIT);
  const [mode, setMode] = useState<Mode>("view");
  const [draft, setDraft] = useState<KeyValue | null>(null);
  const [text, setText] = useState("");
  const [changedWhileEditing, setChangedWhileEditing] = useState(false);

  const load = useCallback(async () => {
    try {
      const d = await api.getKey(keyName, limit);
      setDetail(d);
      setMissing(false);
      setError(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        setMissing(true);
        setError(null);
      } else setError(e instanceof ApiError ? e : new ApiError(0, "error", String(e)));
    }
  }, [api, keyName, limit]);

  useEffect(() => {
    setMode("view");
    setLimit(FIRST_LIMIT);
    setDetail(null);
    setMissing(false);
  }, [keyName]);

  useEffect(() => {
    if (mode === "edit") {
      if (version > 0) setChangedWhileEditing(true);
      return;
    }
    void load();
    // Reload on a live change unless the user is typing over the value.
  }, [load, version]);

  const act = async (what: () => Promise<void>) => {
    try {
      await what();
      setError(null);
      setMode("view");
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "error", String(e)));
    }
  };

  const save = () =>
    act(async () => {
      if (!draft || !detail) return;
      const d = await api.putKey(keyName, draft, detail.ttlMs > 0 ? detail.ttlMs : null);
      setDetail(d);
      setChangedWhileEditing(false);
    });

  const rename = () =>
    act(async () => {
      const to = bin(text);
      await api.patchKey(keyName, { renameTo: to });
      onRenamed(to);
    });

  const setTtl = () =>
    act(async () => {
      const seconds = text.trim() === "" ? null : Number(text);
      if (seconds !== null && (!Number.isFinite(seconds) || seconds <= 0)) throw new ApiError(400, "bad_ttl", "TTL must be a positive number of seconds, or empty to remove it");
      setDetail(await api.patchKey(keyName, { ttlMs: seconds === null ? null : Math.round(seconds * 1000) }));
    });

  const remove = () =>
    act(async () => {
      await api.deleteKey(keyName);
      onDeleted();
    });

  const editable = detail && !detail.truncated && isEditable(detail.data);

  return (
    <section className="key-panel" aria-label="selected key">
      <header className="key-panel-head">
        <h2>
          <KeyName value={keyName} />
        </h2>
        <button type="button" className="icon" aria-label="close key" title="Close (Esc)" onClick={onClose}>
          ×
        </button>
      </header>
      {missing && <p className="notice">This key does not exist (any more).</p>}
      {error && <ErrorNote error={error} />}
      {detail && !missing && (
        <>
          <dl className="facts">
            <div>
              <dt>type</dt>
              <dd className={`type type-${detail.type}`}>{detail.type}</dd>
            </div>
            <div>
              <dt>TTL</dt>
              <dd>{formatTtl(detail.ttlMs)}</dd>
            </div>
            <div>
              <dt>size</dt>
              <dd>{detail.size === null ? "–" : detail.type === "string" ? formatBytes(detail.size) : `${detail.size.toLocaleString()} ${detail.type === "stream" ? "entries" : "items"}`}</dd>
            </div>
            <div>
              <dt>node</dt>
              <dd title={detail.node ?? ""}>{shortId(detail.node)}</dd>
            </div>
            <div>
              <dt>slot</dt>
              <dd>{detail.slot ?? "–"}</dd>
            </div>
            {detail.encoding && (
              <div>
                <dt>encoding</dt>
                <dd>{detail.encoding}</dd>
              </div>
            )}
          </dl>
          <div className="actions">
            <button type="button" disabled={!editable} title={editable ? "" : "binary or partly loaded values are read-only here"} onClick={() => { setDraft(detail.data); setChangedWhileEditing(false); setMode("edit"); }}>
              Edit
            </button>
            <button type="button" onClick={() => { setText(keyName.b64 ? "" : keyName.text); setMode("rename"); }}>
              Rename
            </button>
            <button type="button" onClick={() => { setText(detail.ttlMs > 0 ? String(Math.ceil(detail.ttlMs / 1000)) : ""); setMode("ttl"); }}>
              Set TTL
            </button>
            <button type="button" className="danger" onClick={() => setMode("delete")}>
              Delete
            </button>
          </div>
          {mode === "delete" && (
            <Confirm message="Delete this key from the cluster?" confirmLabel="Delete" onConfirm={() => void remove()} onCancel={() => setMode("view")} />
          )}
          {(mode === "rename" || mode === "ttl") && (
            <form
              className="inline-form"
              onSubmit={(e) => {
                e.preventDefault();
                void (mode === "rename" ? rename() : setTtl());
              }}
            >
              <label>
                {mode === "rename" ? "New name" : "TTL in seconds (empty: no TTL)"}
                <input autoFocus value={text} onChange={(e) => setText(e.target.value)} />
              </label>
              <button type="submit">{mode === "rename" ? "Rename" : "Set TTL"}</button>
              <button type="button" onClick={() => setMode("view")}>
                Cancel
              </button>
            </form>
          )}
          {mode === "edit" && draft ? (
            <form
              className="edit-form"
              onSubmit={(e) => {
                e.preventDefault();
                void save();
              }}
            >
              {changedWhileEditing && <p className="notice">This key changed on the server while you were editing; saving replaces it.</p>}
              <ValueEditor value={draft} onChange={setDraft} />
              <div className="actions">
                <button type="submit" className="primary">
                  Save
                </button>
                <button type="button" onClick={() => { setMode("view"); void load(); }}>
                  Cancel
                </button>
              </div>
            </form>
          ) : (
            <ValueView detail={detail} onLoadMore={() => setLimit((l) => l * 10)} />
          )}
        </>
      )}
    </section>
  );
}

export function ErrorNote({ error }: { error: ApiError }) {
  const server = useServer();
  const [token, setToken] = useState("");
  if (error.code === "writes_disabled" || error.status === 403) {
    return (
      <div className="error" role="alert">
        <p>
          This node refuses writes from HTTP ({error.message}). Start it with <code>--http-allow-writes yes</code>, or give its{" "}
          <code>http.token</code>:
        </p>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            server.api.setToken(token || null);
            sessionStorage.setItem("reredis.token", token);
          }}
        >
          <input type="password" aria-label="token" value={token} onChange={(e) => setToken(e.target.value)} />
          <button type="submit">Use token</button>
        </form>
      </div>
    );
  }
  return (
    <p className="error" role="alert">
      {error.message}
      {error.node && (
        <>
          {" "}
          (owned by <a href={`http://${error.node}${window.location.pathname}${window.location.search}`}>{error.node}</a>)
        </>
      )}
    </p>
  );
}

export function shortId(id: string | null): string {
  if (!id) return "–";
  return id.length > 10 ? id.slice(0, 8) + "…" : id;
}
