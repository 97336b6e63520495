import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import type { Server } from "../client/server";
import { ServerContext } from "../client/server";

export function renderWith(server: Server, ui: ReactElement) {
  return render(<ServerContext.Provider value={server}>{ui}</ServerContext.Provider>);
}
