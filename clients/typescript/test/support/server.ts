// A real rtchat process for the tests: the binary from RTCHAT_BIN on a free port, against the
// suite's PostgreSQL (DATABASE_URL, set by test/run.mjs), with a fixed JWT secret so tokens
// survive a restart and rate limits raised (tests send faster than people). kill() is a
// SIGKILL; start() again brings it back on the same port.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";

/** How long a start may take (schema check and listener on a busy machine). */
const START_TIMEOUT_MS = 30_000;

export const JWT_SECRET = "rtchat-ts-client-tests-secret-0123456789";

const RAISED_LIMITS: Record<string, string> = {
  RTCHAT_RATE_MESSAGES_PER_SEC: "100000",
  RTCHAT_RATE_MESSAGES_BURST: "100000",
  RTCHAT_RATE_LOGIN_PER_EMAIL: "100000",
  RTCHAT_RATE_LOGIN_PER_ADDR: "100000",
  RTCHAT_RATE_REGISTER_PER_ADDR: "100000",
  RTCHAT_RATE_REGISTER_PER_EMAIL: "100000",
  RTCHAT_RATE_TYPING_PER_SEC: "1000",
};

/** Server ports come from below Linux's ephemeral range (32768..60999): a restarted server
 * gets its port back, and an outgoing connection (which takes an ephemeral local port) cannot
 * be sitting on it while the server is down. */
const PORT_RANGE = [20_000, 32_000] as const;

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = PORT_RANGE[0] + Math.floor(Math.random() * (PORT_RANGE[1] - PORT_RANGE[0]));
    if (await canBind(port)) return port;
  }
  throw new Error("no free port");
}

export class RtchatServer {
  private proc: ChildProcess | undefined;
  private log = "";

  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts a server; `env` adds or overrides settings. */
  static async start(env: Record<string, string> = {}): Promise<RtchatServer> {
    const server = new RtchatServer(await freePort(), env);
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    const bin = process.env.RTCHAT_BIN;
    const database = process.env.DATABASE_URL;
    if (!bin || !database) throw new Error("run the tests through test/run.mjs (RTCHAT_BIN, DATABASE_URL)");
    this.log = "";
    const proc = spawn(bin, [], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        RTCHAT_ADDR: `127.0.0.1:${this.port}`,
        DATABASE_URL: database,
        JWT_SECRET,
        RTCHAT_LOG: "warn",
        RTCHAT_SHUTDOWN_GRACE_SECS: "2",
        RTCHAT_DB_POOL_SIZE: "8",
        ...RAISED_LIMITS,
        ...this.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    const keep = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-20_000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) break;
      try {
        const r = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`rtchat did not become ready on ${this.url}:\n${this.log}`);
  }

  /** SIGKILL: no goodbye to anyone. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM: sockets close with 1001. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  get output(): string {
    return this.log;
  }
}
