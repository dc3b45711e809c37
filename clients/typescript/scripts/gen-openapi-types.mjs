#!/usr/bin/env node
// Generates src/generated/openapi.ts from the repository's openapi.yaml: one TypeScript type
// per schema in `components.schemas`, and the table of operations (operationId -> method and
// path). The client's own types are built on these, and its endpoint table must match the
// operation table exactly (tsc fails otherwise), so the spec and the client cannot drift
// apart silently.
//
//   node scripts/gen-openapi-types.mjs           rewrite src/generated/openapi.ts
//   node scripts/gen-openapi-types.mjs --check   exit 1 if the file is not what the spec gives
//
// It handles the JSON Schema subset openapi.yaml uses: $ref, type (or a list of types),
// const, enum, oneOf/anyOf, allOf, object properties/required, array items.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const specPath = process.env.RTCHAT_OPENAPI ?? join(here, "../../../openapi.yaml");
const outPath = join(here, "../src/generated/openapi.ts");

const spec = parse(readFileSync(specPath, "utf8"));

/** The TypeScript type of a schema, indented for nesting level `depth`. */
function typeOf(schema, depth) {
  if (schema === true || schema === undefined) return "unknown";
  if (schema.$ref) return schema.$ref.replace("#/components/schemas/", "");
  if ("const" in schema) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const alts = schema.oneOf ?? schema.anyOf;
  if (alts) return alts.map((s) => wrap(typeOf(s, depth))).join(" | ");
  if (schema.allOf) return schema.allOf.map((s) => wrap(typeOf(s, depth))).join(" & ");
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length === 0) return schema.properties ? objectType(schema, depth) : "unknown";
  return types
    .map((t) => {
      switch (t) {
        case "integer":
        case "number":
          return "number";
        case "string":
        case "boolean":
        case "null":
          return t;
        case "array":
          return `${wrap(typeOf(schema.items, depth))}[]`;
        case "object":
          return objectType(schema, depth);
        default:
          throw new Error(`unsupported type ${t}`);
      }
    })
    .join(" | ");
}

function wrap(t) {
  return /[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t;
}

function objectType(schema, depth) {
  const props = Object.entries(schema.properties ?? {});
  if (props.length === 0) return "Record<string, unknown>";
  const required = new Set(schema.required ?? []);
  const pad = "  ".repeat(depth + 1);
  const lines = props.map(
    ([name, s]) => `${pad}${name}${required.has(name) ? "" : "?"}: ${typeOf(s, depth + 1)};`,
  );
  return `{\n${lines.join("\n")}\n${"  ".repeat(depth)}}`;
}

let out = `// Generated from openapi.yaml by scripts/gen-openapi-types.mjs: do not edit by hand.
// \`npm run gen:types\` rewrites it; \`npm run check:types-drift\` (run by CI) fails when it is stale.
/* eslint-disable */

`;
for (const [name, schema] of Object.entries(spec.components.schemas)) {
  out += `export type ${name} = ${typeOf(schema, 0)};\n\n`;
}

const methods = ["get", "put", "post", "delete", "patch", "head", "options"];
out += "/** Every operation of the spec: its method and path template. */\nexport interface Operations {\n";
for (const [path, item] of Object.entries(spec.paths)) {
  for (const method of methods) {
    const op = item[method];
    if (!op) continue;
    out += `  ${op.operationId}: { method: "${method.toUpperCase()}"; path: "${path}" };\n`;
  }
}
out += "}\n\nexport type OperationId = keyof Operations;\n";

if (process.argv.includes("--check")) {
  const current = readFileSync(outPath, "utf8");
  if (current !== out) {
    console.error(
      "src/generated/openapi.ts is stale: openapi.yaml changed. Run `npm run gen:types`, then fix what tsc reports.",
    );
    process.exit(1);
  }
  console.log("src/generated/openapi.ts matches openapi.yaml");
} else {
  writeFileSync(outPath, out);
  console.log(`wrote ${outPath}`);
}
