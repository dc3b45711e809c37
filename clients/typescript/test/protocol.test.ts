// The stream against a scripted server (a `ws` server in the test), for what a correct rtchat
// never does or does not do yet: a duplicate and a gap in `seq` (they must never reach the
// handler), v2's `resync_required` with `{seq}`, a durable event of an unknown type, 4001
// followed by a refresh, and a stalled handshake.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import { MemoryTokenStore, type ResyncInfo, type StreamProblem, type UnknownEvent } from "../src/index.js";
import { newClient, waitFor, closeClients } from "./support/helpers.js";

after(closeClients);

/** An unsigned JWT for user 7: the client only reads its claims. */
function fakeToken(n: number): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "none" })}.${b64({ sub: "7", n, exp: Math.floor(Date.now() / 1000) + 3600 })}.sig`;
}

interface Connection {
  socket: ServerSocket;
  since: string | null;
  token: string | null;
}

/** A scripted rtchat: each connection is handed to `onConnection`. */
class ScriptedServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  readonly connections: Connection[] = [];
  onConnection: (c: Connection, index: number) => void = () => undefined;
  refreshes = 0;

  constructor() {
    this.http = createServer((req, res) => {
      if (req.method === "POST" && req.url === "/auth/refresh") {
        this.refreshes++;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            access_token: fakeToken(100 + this.refreshes),
            token_type: "bearer",
            expires_in: 3600,
            refresh_token: `refresh-${this.refreshes}`,
          }),
        );
        return;
      }
      if (req.method === "GET" && req.url?.startsWith("/chats/1/messages")) {
        res.writeHead(200, { "content-type": "application/json" });
        const m = (message(1) as { payload: object }).payload;
        res.end(JSON.stringify({ messages: [{ ...m, reactions: [] }], has_more: false }));
        return;
      }
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"detail":"nothing here","code":"not_found"}');
    });
    this.wss = new WebSocketServer({ server: this.http, path: "/ws/notif" });
    this.wss.on("connection", (socket: ServerSocket, req: IncomingMessage) => {
      const url = new URL(req.url ?? "/", "http://x");
      const c = { socket, since: url.searchParams.get("since"), token: url.searchParams.get("token") };
      this.connections.push(c);
      this.onConnection(c, this.connections.length - 1);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(0, "127.0.0.1", resolve));
    const address = this.http.address();
    return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

function send(c: Connection, frame: object): void {
  c.socket.send(JSON.stringify(frame));
}
function ready(c: Connection, seq: number): void {
  send(c, { type: "ready", payload: { user_id: 7, seq, heartbeat_interval_ms: 25_000 } });
}
function message(seq: number): object {
  return {
    type: "new_message",
    seq,
    payload: {
      id: seq,
      chat_id: 1,
      sender_id: 8,
      text: `m${seq}`,
      created_at: "2026-12-01T00:00:00Z",
      edited_at: null,
      client_id: null,
    },
  };
}

async function signedInClient(url: string, options: Parameters<typeof newClient>[1] = {}) {
  const tokens = new MemoryTokenStore();
  tokens.save({ accessToken: fakeToken(1), refreshToken: "refresh-0", expiresAt: Date.now() + 3_600_000, lifetimeMs: 3_600_000 });
  const client = newClient(url, { tokenStore: tokens, ...options });
  await client.ready();
  return client;
}

describe("stream protocol (scripted server)", () => {
  let server: ScriptedServer;
  let url: string;
  before(async () => {
    server = new ScriptedServer();
    url = await server.listen();
  });
  after(async () => {
    await server.close();
  });

  test("a duplicate and a gap never reach the handler; the gap resumes from the cursor; v2 resync sets the cursor", async () => {
    server.connections.length = 0;
    server.onConnection = (c, i) => {
      if (i === 0) {
        ready(c, 5);
        send(c, message(6));
        send(c, message(7));
        send(c, message(7)); // duplicate
        send(c, message(9)); // gap: 8 is missing
        send(c, message(10));
      } else if (i === 1) {
        ready(c, 10);
        for (const s of [8, 9, 10]) send(c, message(s));
        send(c, { type: "resync_required", payload: { seq: 20 } });
        send(c, message(21));
        send(c, { type: "mystery_event", seq: 22, payload: { x: 1 } });
        send(c, message(23));
      }
    };
    const client = await signedInClient(url);
    const seen: number[] = [];
    const resyncs: ResyncInfo[] = [];
    const problems: StreamProblem[] = [];
    const unknown: UnknownEvent[] = [];
    client.events.subscribe((e) => void seen.push(e.seq), {
      onResync: (r) => void resyncs.push(r),
      onProblem: (p) => void problems.push(p),
      onUnknownEvent: (e) => void unknown.push(e),
    });
    await waitFor("seq 23", () => client.events.lastSeq === 23);
    assert.deepEqual(seen, [6, 7, 8, 9, 10, 21, 23]);
    assert.deepEqual(resyncs, [
      { reason: "initial", seq: 5 },
      { reason: "resync_required", seq: 20 },
    ]);
    assert.deepEqual(unknown.map((e) => e.type), ["mystery_event"]);
    assert.equal(server.connections[1]?.since, "7", "the second socket resumed after the last handled seq");
    const violations = problems.filter((p) => p.kind === "protocol_violation");
    assert.deepEqual(
      violations.map((p) => (p.kind === "protocol_violation" ? [p.detail, p.cursor, p.seq] : [])),
      [
        ["duplicate seq", 7, 7],
        ["gap in seq", 7, 9],
      ],
    );
    assert.equal(client.events.stats.duplicates, 1);
    assert.equal(client.events.stats.gaps, 1);
    client.close();
  });

  test("v1 resync_required without a payload takes the ready frame's seq", async () => {
    server.connections.length = 0;
    server.onConnection = (c) => {
      ready(c, 40);
      send(c, { type: "resync_required" });
      send(c, message(41));
    };
    const client = await signedInClient(url, { cursorStore: { load: () => 1000, save: () => undefined } });
    const seen: number[] = [];
    const resyncs: ResyncInfo[] = [];
    client.events.subscribe((e) => void seen.push(e.seq), { onResync: (r) => void resyncs.push(r) });
    await waitFor("seq 41", () => seen.length === 1);
    assert.deepEqual(resyncs, [{ reason: "resync_required", seq: 40 }]);
    assert.deepEqual(seen, [41]);
    assert.equal(server.connections[0]?.since, "1000");
    client.close();
  });

  test("a 4001 close refreshes the token and reconnects with the new one", async () => {
    server.connections.length = 0;
    server.refreshes = 0;
    server.onConnection = (c, i) => {
      ready(c, i === 0 ? 0 : 1);
      if (i === 0) {
        send(c, message(1));
        setTimeout(() => c.socket.close(4001, "token expired"), 50);
      } else {
        send(c, message(2));
      }
    };
    const client = await signedInClient(url);
    const seen: number[] = [];
    client.events.subscribe((e) => void seen.push(e.seq), { since: 0 });
    await waitFor("seq 2", () => seen.length === 2);
    assert.deepEqual(seen, [1, 2]);
    assert.equal(server.refreshes, 1);
    assert.notEqual(server.connections[1]?.token, server.connections[0]?.token);
    assert.equal(server.connections[1]?.since, "1");
    client.close();
  });

  test("a socket that never sends ready is given up on and retried", async () => {
    server.connections.length = 0;
    server.onConnection = (c, i) => {
      if (i === 0) return; // stalls
      ready(c, 0);
      send(c, message(1));
    };
    const client = await signedInClient(url, { connectTimeoutMs: 300 });
    const seen: number[] = [];
    client.events.subscribe((e) => void seen.push(e.seq), { since: 0 });
    await waitFor("seq 1", () => seen.length === 1);
    assert.ok(server.connections.length >= 2);
    client.close();
  });

  test("a connection that stops answering pings is dropped and resumed", async () => {
    server.connections.length = 0;
    server.onConnection = (c, i) => {
      ready(c, i === 0 ? 0 : 1);
      if (i === 0) send(c, message(1)); // then silence: pings go unanswered
      else send(c, message(2));
    };
    const client = await signedInClient(url, { pingIntervalMs: 500, pongTimeoutMs: 300 });
    const seen: number[] = [];
    const problems: StreamProblem[] = [];
    client.events.subscribe((e) => void seen.push(e.seq), { since: 0, onProblem: (p) => void problems.push(p) });
    await waitFor("seq 2", () => seen.length === 2);
    assert.deepEqual(seen, [1, 2]);
    assert.ok(problems.some((p) => p.kind === "closed" && p.reason === "no answer to a ping"));
    assert.equal(server.connections[1]?.since, "1");
    client.close();
  });

  test("v2 reaction events update the message window; presence frames reach onPresence", async () => {
    server.connections.length = 0;
    const reaction = (seq: number, emoji: string, added: boolean, count: number, user_id = 8) => ({
      type: "reaction",
      seq,
      payload: { chat_id: 1, message_id: 1, user_id, emoji, added, count },
    });
    let go: (c: Connection) => void = () => undefined;
    server.onConnection = (c) => {
      ready(c, 1);
      go = (conn) => {
        send(conn, reaction(2, "👍", true, 1));
        send(conn, reaction(3, "🎉", true, 1));
        send(conn, { type: "presence", payload: { user_id: 8, online: true, last_seen_at: null } });
        send(conn, reaction(4, "👍", true, 2));
        send(conn, reaction(5, "🎉", false, 0));
        // The caller's own (user 7): my_reactions follows, and an edit's event keeps it.
        send(conn, reaction(6, "❤️", true, 1, 7));
        send(conn, reaction(7, "👍", true, 3, 7));
        send(conn, reaction(8, "👍", false, 2, 7));
        const edited = (message(1) as { payload: object }).payload;
        send(conn, { type: "update_message", seq: 9, payload: { ...edited, text: "m1, edited", reactions: [{ emoji: "👍", count: 2 }, { emoji: "❤️", count: 1 }] } });
      };
    };
    const client = await signedInClient(url);
    const presence: unknown[] = [];
    const seqs: number[] = [];
    client.events.subscribe((e) => void seqs.push(e.seq), { onPresence: (p) => void presence.push(p) });
    const win = client.messageWindow(1);
    await win.start();
    await waitFor("the socket", () => server.connections.length === 1 && client.events.state === "open");
    const c = server.connections[0];
    assert.ok(c);
    go(c);
    await waitFor("seq 9", () => client.events.lastSeq === 9);
    const first = win.entries[0];
    assert.ok(first?.kind === "message");
    assert.equal(first.message.text, "m1, edited");
    assert.deepEqual(first.message.reactions, [
      { emoji: "👍", count: 2 },
      { emoji: "❤️", count: 1 },
    ]);
    assert.deepEqual(first.message.my_reactions, ["❤️"]);
    assert.deepEqual(presence, [{ user_id: 8, online: true, last_seen_at: null }]);
    assert.deepEqual(seqs, [2, 3, 4, 5, 6, 7, 8, 9], "presence takes no place in the seq order");
    win.stop();
    client.close();
  });

  test("async handlers are awaited one at a time, in seq order", async () => {
    server.connections.length = 0;
    server.onConnection = (c) => {
      ready(c, 0);
      for (let seq = 1; seq <= 20; seq++) send(c, message(seq));
    };
    const client = await signedInClient(url);
    const log: string[] = [];
    let inside = 0;
    let overlapped = false;
    client.events.subscribe(
      async (e) => {
        if (++inside > 1) overlapped = true;
        log.push(`start ${e.seq}`);
        await new Promise((r) => setTimeout(r, (e.seq * 7) % 5));
        log.push(`end ${e.seq}`);
        inside--;
      },
      { since: 0 },
    );
    await waitFor("seq 20", () => client.events.lastSeq === 20);
    assert.equal(overlapped, false);
    assert.deepEqual(log, Array.from({ length: 20 }, (_, i) => [`start ${i + 1}`, `end ${i + 1}`]).flat());
    client.close();
  });

  test("a refresh takes the Web Lock where the platform has one (tabs sharing a store)", async () => {
    const names: string[] = [];
    const had = Object.getOwnPropertyDescriptor(globalThis, "navigator");
    Object.defineProperty(globalThis, "navigator", {
      configurable: true,
      value: {
        locks: {
          request: <T>(name: string, callback: () => Promise<T>) => {
            names.push(name);
            return callback();
          },
        },
      },
    });
    try {
      const before = server.refreshes;
      const client = await signedInClient(url);
      const [a, b] = await Promise.all([client.auth.refresh(), client.auth.refresh()]);
      assert.ok(a && a === b, "one refresh for both callers");
      assert.equal(server.refreshes, before + 1);
      assert.deepEqual(names, ["rtchat.refresh"]);
      client.close();
    } finally {
      if (had) Object.defineProperty(globalThis, "navigator", had);
      else Reflect.deleteProperty(globalThis, "navigator");
    }
  });
});
