#!/usr/bin/env node
// Bundles the demo page (demo/app.ts with the client) into ../../static/app.js, which the
// server compiles in (so building rtchat needs no Node). Readable, not minified: it is the
// example a front-end author opens first.
//
//   node scripts/build-demo.mjs           rewrite static/app.js
//   node scripts/build-demo.mjs --check   exit 1 if static/app.js is not what the sources give
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outPath = join(here, "../../../static/app.js");
const result = await build({
  entryPoints: [join(here, "../demo/app.ts")],
  bundle: true,
  format: "iife",
  target: "es2020",
  platform: "browser",
  charset: "utf8",
  legalComments: "none",
  write: false,
  banner: {
    js: "// Generated from clients/typescript/demo/app.ts and @rtchat/client by\n// clients/typescript/scripts/build-demo.mjs: edit those, then `npm run demo`.",
  },
});
const code = result.outputFiles[0].text;
if (process.argv.includes("--check")) {
  if (readFileSync(outPath, "utf8") !== code) {
    console.error("static/app.js is stale: run `npm run demo` in clients/typescript");
    process.exit(1);
  }
  console.log("static/app.js matches the demo sources");
} else {
  writeFileSync(outPath, code);
  console.log(`wrote ${outPath} (${(code.length / 1024).toFixed(1)} KiB)`);
}
