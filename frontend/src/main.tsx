import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { Server, ServerContext } from "./client/server";
import "./index.css";

// `?api=http://host:port` points the UI at another node (development, or a node with CORS).
const base = new URLSearchParams(window.location.search).get("api") ?? "";
const server = new Server({ base, location: window.location, token: sessionStorage.getItem("reredis.token") || null });
server.start();

const root = document.getElementById("root");
if (root)
  createRoot(root).render(
    <StrictMode>
      <ServerContext.Provider value={server}>
        <App />
      </ServerContext.Provider>
    </StrictMode>,
  );
