/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Dev server: `REREDIS_HTTP=127.0.0.1:8080 npm run dev` proxies the API and feed to a node.
const node = process.env.REREDIS_HTTP ?? "127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 400 },
  server: {
    proxy: {
      "/api": `http://${node}`,
      "/metrics": `http://${node}`,
      "/ws": { target: `ws://${node}`, ws: true },
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
