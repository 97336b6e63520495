// An inline "are you sure?" for destructive actions: no browser dialog, keyboard reachable.

import { useEffect, useRef } from "react";

interface Props {
  message: string;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}

export function Confirm({ message, confirmLabel, onConfirm, onCancel }: Props) {
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  return (
    <div role="alertdialog" aria-label={message} className="confirm" onKeyDown={(e) => e.key === "Escape" && onCancel()}>
      <span>{message}</span>
      <button type="button" className="danger" onClick={onConfirm}>
        {confirmLabel}
      </button>
      <button type="button" ref={cancel} onClick={onCancel}>
        Cancel
      </button>
    </div>
  );
}
