import { defineConfig } from "vite";
import { resolve } from "node:path";

// `npm run dev` proxies the API to a `tend serve` on 127.0.0.1:7878 (override with TEND_URL).
export default defineConfig({
  build: {
    target: "es2022",
    chunkSizeWarningLimit: 600,
    rollupOptions: {
      input: {
        main: resolve(__dirname, "index.html"),
        bench: resolve(__dirname, "bench.html"),
      },
    },
  },
  server: {
    proxy: { "/api": process.env.TEND_URL ?? "http://127.0.0.1:7878" },
  },
});
