// Creating a key: name, type, value and an optional TTL, written with PUT.

import { useState } from "react";
import { ApiError, type KeyValue } from "../client/api";
import { useServer } from "../client/server";
import { type Bin, bin } from "../lib/bytes";
import { ErrorNote } from "./KeyPanel";
import { ValueEditor, emptyValue } from "./ValueEditor";

interface Props {
  onCreated: (key: Bin) => void;
  onCancel: () => void;
}

export function NewKeyForm({ onCreated, onCancel }: Props) {
  const { api } = useServer();
  const [name, setName] = useState("");
  const [value, setValue] = useState<KeyValue>(() => emptyValue("string"));
  const [ttl, setTtl] = useState("");
  const [error, setError] = useState<ApiError | null>(null);

  const submit = async () => {
    const key = bin(name);
    const seconds = ttl.trim() ? Number(ttl) : null;
    if (!name) return setError(new ApiError(400, "bad_key", "A key needs a name"));
    if (seconds !== null && (!Number.isFinite(seconds) || seconds <= 0)) return setError(new ApiError(400, "bad_ttl", "TTL must be a positive number of seconds"));
    try {
      await api.putKey(key, value, seconds === null ? null : Math.round(seconds * 1000));
      onCreated(key);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "error", String(e)));
    }
  };

  return (
    <form
      className="new-key"
      aria-label="new key"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <div className="inline-form">
        <label>
          Name
          <input autoFocus value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Type
          <select value={value.type} onChange={(e) => setValue(emptyValue(e.target.value))}>
            {["string", "hash", "list", "set", "zset", "stream"].map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          TTL (s)
          <input inputMode="numeric" value={ttl} placeholder="none" onChange={(e) => setTtl(e.target.value)} />
        </label>
      </div>
      <ValueEditor value={value} onChange={setValue} />
      {error && <ErrorNote error={error} />}
      <div className="actions">
        <button type="submit" className="primary">
          Create
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
