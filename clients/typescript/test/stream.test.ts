// The event stream against a real rtchat behind a chaos proxy: every event exactly once and
// in order while sockets are cut, the network goes silent or down, and the server is killed
// (SIGKILL) and restarted; a reloaded client resuming from its stored cursor; token expiry
// mid-stream; and the resync_required path.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryCursorStore, MemoryTokenStore, type ChatEvent, type ResyncInfo } from "../src/index.js";
import { ChaosProxy } from "./support/proxy.js";
import { RtchatServer } from "./support/server.js";
import { consecutive, delay, newClient, newUser, waitFor, closeClients } from "./support/helpers.js";

after(closeClients);

describe("stream under chaos", () => {
  let server: RtchatServer;
  /** A second process on the same PostgreSQL: the proxy switches between the two. */
  let other: RtchatServer;
  let target: RtchatServer;
  let proxy: ChaosProxy;
  before(async () => {
    server = await RtchatServer.start();
    other = await RtchatServer.start();
    target = server;
    proxy = await ChaosProxy.start(() => target.port);
  });
  after(async () => {
    await proxy.close();
    await other.stop();
    await server.stop();
  });

  test("every event exactly once, in seq order, through cuts, silence, outages, process switches and SIGKILL restarts", async (t) => {
    // Ann listens through the proxy (to one process or the other), with fast liveness checks
    // so a silent network is noticed within seconds; Bob (direct to the first process) and
    // Ann (through the proxy) keep sending.
    const ann = await newUser(proxy.url, "ann", { pingIntervalMs: 500, pongTimeoutMs: 1_000, connectTimeoutMs: 3_000 });
    const bob = await newUser(server.url, "bob");
    const chat = await bob.client.chats.create({ type: "group", participant_ids: [ann.id] });

    const seen: ChatEvent[] = [];
    const resyncs: ResyncInfo[] = [];
    const problems: string[] = [];
    ann.client.events.subscribe((e) => void seen.push(e), {
      onResync: (info) => void resyncs.push(info),
      onProblem: (p) => {
        if (p.kind === "protocol_violation" || p.kind === "handler_error") problems.push(JSON.stringify(p));
      },
    });
    await waitFor("the stream to open", () => ann.client.events.state === "open");

    const sends: Promise<unknown>[] = [];
    let sending = true;
    const sender = (async () => {
      let i = 0;
      while (sending) {
        sends.push(bob.client.messages.send(chat.id, `bob ${++i}`));
        if (i % 3 === 0) sends.push(ann.client.messages.send(chat.id, `ann ${i}`));
        await delay(20);
      }
    })();

    // Sockets also close at random moments throughout (seeded: RTCHAT_CHAOS_SEED replays a run).
    const seed = Number(process.env.RTCHAT_CHAOS_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`chaos seed ${seed}`);
    let rng = seed;
    const random = () => ((rng = (rng * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    let randomCuts = 0;
    let chaosOn = true;
    const randomCloser = (async () => {
      while (chaosOn) {
        await delay(200 + random() * 800);
        if (chaosOn && random() < 0.5) randomCuts += proxy.cut() > 0 ? 1 : 0;
      }
    })();

    // The chaos, in rounds; each kind more than once (SIGTERM: sockets close with 1001).
    const chaos = ["cut", "silent", "switch", "kill", "cut", "down", "switch", "kill", "term", "cut", "silent"];
    for (const what of chaos) {
      await delay(400);
      switch (what) {
        case "cut":
          proxy.cut();
          break;
        case "silent":
          proxy.setSilent(true);
          await delay(2_500);
          proxy.setSilent(false);
          break;
        case "down":
          proxy.setDown(true);
          await delay(1_000);
          proxy.setDown(false);
          break;
        case "kill":
          await server.kill();
          await delay(300);
          await server.start();
          break;
        case "switch":
          // The load balancer sends Ann to the other process from now on.
          target = target === server ? other : server;
          proxy.cut();
          break;
        case "term":
          await server.stop();
          await server.start();
          break;
      }
    }
    chaosOn = false;
    await randomCloser;
    t.diagnostic(`${randomCuts} random cuts`);
    sending = false;
    await sender;
    const stored = await Promise.all(sends);
    assert.ok(stored.length > 50, `enough traffic: ${stored.length} sends`);

    // The truth: Ann's log, read directly.
    const truth = newClient(server.url, { tokenStore: new MemoryTokenStore() });
    await truth.auth.login(ann.email, "correct horse battery");
    const latest = async () => {
      let since = 0;
      for (;;) {
        const page = await truth.events.list({ since, limit: 100 });
        const last = page.events[page.events.length - 1];
        if (last) since = last.seq;
        if (!page.has_more) return since;
      }
    };
    const last = await latest();
    await waitFor(`Ann's handler to reach seq ${last}`, () => (ann.client.events.lastSeq ?? 0) >= last, 30_000);

    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(problems, [], "no gap, duplicate or handler error reached the client");
    assert.equal(seqs[0], (resyncs[0]?.seq ?? 0) + 1, "the first event follows the initial cursor");
    assert.ok(consecutive(seqs), "seqs are consecutive, each once");
    const messageIds = seen.filter((e) => e.type === "new_message").map((e) => e.payload.id);
    assert.equal(new Set(messageIds).size, messageIds.length, "no message twice");
    assert.equal(messageIds.length, stored.length, "every send is one new_message");
    const stats = ann.client.events.stats;
    assert.equal(stats.duplicates, 0);
    assert.equal(stats.gaps, 0);
    assert.ok(stats.connects >= chaos.length, `the stream reconnected (${stats.connects} sockets)`);
    assert.deepEqual(resyncs.map((r) => r.reason), ["initial"], "one initial resync, no other");

    // Exactly one stored message per send, even for sends retried through the outages.
    const { messages } = await bob.client.messages.list(chat.id, { limit: 100 });
    const all = [...messages];
    let before = messages[0]?.id;
    while (before !== undefined) {
      const page = await bob.client.messages.list(chat.id, { before, limit: 100 });
      all.unshift(...page.messages);
      before = page.has_more ? page.messages[0]?.id : undefined;
    }
    assert.equal(all.length, stored.length);
    ann.client.close();
    bob.client.close();
    truth.close();
  });
});

describe("stream resume, token expiry and resync", () => {
  let server: RtchatServer;
  before(async () => {
    // Tokens live 10 s (the server's minimum), so expiry happens mid-test.
    server = await RtchatServer.start({ RTCHAT_TOKEN_TTL_SECS: "10" });
  });
  after(async () => {
    await server.stop();
  });

  test("a reloaded client resumes from its stored cursor: the missed events, once, no resync", async () => {
    const tokens = new MemoryTokenStore();
    const cursors = new MemoryCursorStore();
    const ann = await newUser(server.url, "ann", { tokenStore: tokens, cursorStore: cursors });
    const bob = await newUser(server.url, "bob");
    const chat = await bob.client.chats.create({ type: "group", participant_ids: [ann.id] });

    const first: number[] = [];
    ann.client.events.subscribe((e) => void first.push(e.seq));
    await waitFor("open", () => ann.client.events.state === "open");
    await bob.client.messages.send(chat.id, "one");
    await waitFor("one event", () => first.length === 1);
    ann.client.close(); // the page goes away

    for (const text of ["two", "three", "four"]) await bob.client.messages.send(chat.id, text);

    // The reloaded page: same stores, a new client.
    const reloaded = newClient(server.url, { tokenStore: tokens, cursorStore: cursors });
    await reloaded.ready();
    const second: ChatEvent[] = [];
    const resyncs: ResyncInfo[] = [];
    reloaded.events.subscribe((e) => void second.push(e), { onResync: (r) => void resyncs.push(r) });
    await waitFor("three missed events", () => second.length >= 3);
    await delay(200);
    assert.deepEqual(
      second.map((e) => e.seq),
      [2, 3, 4].map((n) => (first[0] ?? 0) + n - 1),
    );
    assert.deepEqual(
      second.map((e) => (e.type === "new_message" ? e.payload.text : e.type)),
      ["two", "three", "four"],
    );
    assert.deepEqual(resyncs, []);
    reloaded.close();
    bob.client.close();
  });

  test("token expiry mid-stream is invisible to the handler", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const chat = await bob.client.chats.create({ type: "group", participant_ids: [ann.id] });
    const tokensSeen = new Set<string>();
    const closes: number[] = [];
    const seen: number[] = [];
    ann.client.events.subscribe((e) => void seen.push(e.seq), {
      onProblem: (p) => {
        if (p.kind === "closed") closes.push(p.code);
      },
    });
    await waitFor("open", () => ann.client.events.state === "open");
    // 25 s: past two expiries of a 10 s token (the socket's token ends with 4001 each time).
    const until = Date.now() + 25_000;
    let sent = 0;
    while (Date.now() < until) {
      await bob.client.messages.send(chat.id, `tick ${++sent}`);
      tokensSeen.add(ann.client["session"].current?.accessToken ?? "");
      await delay(250);
    }
    await waitFor("every tick", () => seen.length >= sent);
    assert.equal(seen.length, sent);
    assert.ok(consecutive(seen));
    assert.ok(tokensSeen.size >= 3, `the access token was refreshed (${tokensSeen.size} tokens)`);
    assert.ok(closes.includes(4001) || ann.client.events.stats.connects > 1, "the socket moved to a new token");
    assert.equal(ann.client.events.stats.gaps, 0);
    assert.equal(ann.client.events.stats.duplicates, 0);
    ann.client.close();
    bob.client.close();
  });

  test("resync_required: onResync once with the new cursor, then the stream goes on from it", async () => {
    const cursors = new MemoryCursorStore();
    const ann = await newUser(server.url, "ann", { cursorStore: cursors });
    const bob = await newUser(server.url, "bob");
    const chat = await bob.client.chats.create({ type: "group", participant_ids: [ann.id] });
    await bob.client.messages.send(chat.id, "before");
    // A cursor the server never issued (a restored backup, another deployment): the server
    // answers resync_required.
    cursors.save(ann.id, 1_000_000);
    const resyncs: ResyncInfo[] = [];
    const seen: ChatEvent[] = [];
    let chatsAtResync = -1;
    ann.client.events.subscribe((e) => void seen.push(e), {
      onResync: async (info) => {
        resyncs.push(info);
        chatsAtResync = (await ann.client.chats.list()).chats.length;
      },
    });
    await waitFor("the resync", () => resyncs.length === 1);
    assert.equal(resyncs[0]?.reason, "resync_required");
    assert.equal(resyncs[0]?.seq, 2, "create_chat and new_message were Ann's events so far");
    assert.equal(chatsAtResync, 1, "the handler refetched state");
    await bob.client.messages.send(chat.id, "after");
    await waitFor("the next event", () => seen.length === 1);
    assert.equal(seen[0]?.seq, 3);
    assert.equal(ann.client.events.lastSeq, 3);
    assert.equal(cursors.load(ann.id), 3, "the cursor is persisted");
    ann.client.close();
    bob.client.close();
  });

  test("another user signing in on the same client gets their own stream and cursor", async () => {
    const cursors = new MemoryCursorStore();
    const ann = await newUser(server.url, "ann", { cursorStore: cursors });
    const bob = await newUser(server.url, "bob");
    const cid = await newUser(server.url, "cid");
    const annChat = await bob.client.chats.create({ type: "group", participant_ids: [ann.id] });
    const cidChat = await bob.client.chats.create({ type: "group", participant_ids: [cid.id] });
    const seen: { user: number | undefined; event: ChatEvent }[] = [];
    ann.client.events.subscribe((event) => void seen.push({ user: ann.client.auth.userId, event }));
    await waitFor("open", () => ann.client.events.state === "open");
    await bob.client.messages.send(annChat.id, "for ann");
    await waitFor("ann's message", () => seen.length === 1);

    await ann.client.auth.login(cid.email, "correct horse battery");
    await waitFor("cid's stream", () => ann.client.events.state === "open" && ann.client.events.lastSeq !== null);
    await bob.client.messages.send(cidChat.id, "for cid");
    await bob.client.messages.send(annChat.id, "for ann again");
    await waitFor("cid's message", () => seen.length === 2);
    await delay(300);
    const texts = seen.map((s) => (s.event.type === "new_message" ? s.event.payload.text : s.event.type));
    assert.deepEqual(texts, ["for ann", "for cid"]);
    assert.equal(seen[1]?.user, cid.id);
    assert.ok((cursors.load(ann.id) ?? 0) >= 1, "ann's cursor stays hers");
  });
});
