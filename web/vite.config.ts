// Vite builds the dashboard into dist/ (served by wrenn-cp). `npm run dev` proxies the API to a
// control plane on WRENN_API (default http://127.0.0.1:8000) so pages and API share one origin,
// which the SameSite=Strict session cookies require.
import { defineConfig } from "vite";

const api = process.env.WRENN_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
  },
  server: {
    proxy: {
      "/v1": { target: api, ws: true },
      "/health": api,
      "/openapi.json": api,
      "/docs": api,
    },
  },
});
