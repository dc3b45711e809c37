#!/usr/bin/env node
// The bundle size a browser app pays for the whole client: esbuild bundles and minifies
// src/index.ts (ESM, every export kept), then gzip -9. Fails above the budget.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The budget for minified + gzipped. */
const BUDGET_BYTES = 15 * 1024;

const here = dirname(fileURLToPath(import.meta.url));
const result = await build({
  entryPoints: [join(here, "../src/index.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  write: false,
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`@rtchat/client bundle: ${kib(code.length)} minified, ${kib(gzipped)} minified + gzip (budget ${kib(BUDGET_BYTES)})`);
if (gzipped > BUDGET_BYTES) {
  console.error("over the budget");
  process.exit(1);
}
