// Shared arrangements: clients wired to the `ws` package, users with unique emails, and
// bounded waiting.
import WebSocket from "ws";
import { RtchatClient, type ClientOptions } from "../../src/index.js";

export const PASSWORD = "correct horse battery";
const run = `${process.pid}-${Date.now().toString(36)}`;
let counter = 0;

/** Every client a test made: closed by closeClients() in each file's `after`, so a failed
 * test (which skips its own cleanup) cannot leave a reconnecting stream that keeps the test
 * process alive. */
const clients = new Set<RtchatClient>();

export function closeClients(): void {
  for (const c of clients) c.close();
  clients.clear();
}

export function newClient(baseUrl: string, options: Partial<ClientOptions> = {}): RtchatClient {
  const client = new RtchatClient({
    baseUrl,
    WebSocket,
    // Tests kill servers on purpose: reconnect fast so they stay quick.
    reconnect: { baseMs: 100, maxMs: 1_000 },
    sendRetry: { baseMs: 100, maxMs: 1_000, maxElapsedMs: 60_000 },
    requestTimeoutMs: 5_000,
    ...options,
  });
  clients.add(client);
  return client;
}

export interface TestUser {
  client: RtchatClient;
  id: number;
  email: string;
}

/** Registers a fresh user and logs a new client in as them. */
export async function newUser(baseUrl: string, name: string, options: Partial<ClientOptions> = {}): Promise<TestUser> {
  const client = newClient(baseUrl, options);
  const email = `${name}-${run}-${++counter}@example.com`;
  const user = await client.auth.register({ email, name, password: PASSWORD });
  await client.auth.login(email, PASSWORD);
  return { client, id: user.id, email };
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Asserts the handled seqs are exactly first..last, once each, in order. */
export function consecutive(seqs: readonly number[]): boolean {
  return seqs.every((s, i) => i === 0 || s === (seqs[i - 1] ?? 0) + 1);
}
