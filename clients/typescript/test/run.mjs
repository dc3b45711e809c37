#!/usr/bin/env node
// Runs the compiled test files (build/test/*.test.js) with `node --test` against real rtchat
// processes. One throwaway PostgreSQL 15 cluster serves the whole run (starting one per file
// is slow); each test file starts its own rtchat processes on it (see test/support/server.ts),
// which makes SIGKILL and restart of rtchat clean. The cluster runs as `postgres` when we are
// root (PostgreSQL refuses root), and goes away at the end.
//
// Env: RTCHAT_BIN (default ../../target/release/rtchat), PG_BIN (default
// /usr/lib/postgresql/15/bin). Arguments: `node --test` options, and test files to run only
// those (`npm test -- build/test/v2.test.js`).
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const bin = resolve(process.env.RTCHAT_BIN ?? join(pkg, "../../target/release/rtchat"));
if (!existsSync(bin)) {
  console.error(`no rtchat binary at ${bin}: build it (cargo build --release --bin rtchat) or set RTCHAT_BIN`);
  process.exit(2);
}
const pgBin = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";
const asRoot = process.getuid?.() === 0;

const work = mkdtempSync(join(tmpdir(), "rtchat-ts-client-"));
chmodSync(work, 0o755);
const pgData = join(work, "pg");
const pgSock = work;
const pgLog = join(work, "pg.log");

/** Runs a PostgreSQL tool, as `postgres` when we are root; throws on failure. */
function pg(tool, args, timeoutMs) {
  const cmd = asRoot ? "runuser" : join(pgBin, tool);
  const argv = asRoot ? ["-u", "postgres", "--", join(pgBin, tool), ...args] : args;
  const r = spawnSync(cmd, argv, { cwd: work, encoding: "utf8", timeout: timeoutMs });
  if (r.status !== 0) {
    throw new Error(`${tool} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
  }
}

function cleanup() {
  try {
    pg("pg_ctl", ["-D", pgData, "-m", "immediate", "-w", "-t", "10", "stop"], 20_000);
  } catch {
    // Not running.
  }
  rmSync(work, { recursive: true, force: true });
}

let code;
try {
  if (asRoot) spawnSync("chown", ["postgres:", work]);
  pg("initdb", ["-D", pgData, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"], 120_000);
  // Unix socket only; fsync off: a throwaway cluster.
  appendFileSync(
    join(pgData, "postgresql.conf"),
    `listen_addresses = ''\nunix_socket_directories = '${pgSock}'\nport = 5432\nfsync = off\nmax_connections = 300\n`,
  );
  pg("pg_ctl", ["-D", pgData, "-l", pgLog, "-w", "-t", "60", "start"], 90_000);

  const args = process.argv.slice(2).filter((a) => a !== "--");
  // Test files named after `--` (e.g. build/test/v2.test.js) run alone; the rest go to node.
  const named = args.filter((a) => a.endsWith(".test.js"));
  const extra = args.filter((a) => !a.endsWith(".test.js"));
  const files = named.length
    ? named
    : readdirSync(join(pkg, "build/test"))
        .filter((f) => f.endsWith(".test.js"))
        .map((f) => join("build/test", f));
  // Two files at a time where node can be told (20.10+); 18 picks its own.
  const major = Number(process.versions.node.split(".")[0]);
  const concurrency = major >= 20 ? ["--test-concurrency=2"] : [];
  const child = spawn(
    process.execPath,
    ["--test", "--test-reporter=spec", ...concurrency, ...extra, ...files],
    {
      cwd: pkg,
      stdio: "inherit",
      env: {
        ...process.env,
        RTCHAT_BIN: bin,
        DATABASE_URL: `host=${pgSock} port=5432 user=postgres dbname=postgres`,
      },
    },
  );
  const stop = () => child.kill("SIGTERM");
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  code = await new Promise((resolveCode) => child.on("exit", (c, s) => resolveCode(c ?? (s ? 1 : 0))));
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  code = 1;
} finally {
  cleanup();
}
process.exit(code);
