// The REST client against a real rtchat: every v1 endpoint, the typed errors, the token
// refresh after a 401, and 429 waited out after Retry-After.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RtchatError } from "../src/index.js";
import { RtchatServer } from "./support/server.js";
import { PASSWORD, newClient, newUser, closeClients } from "./support/helpers.js";

after(closeClients);

let server: RtchatServer;
before(async () => {
  server = await RtchatServer.start();
});
after(async () => {
  await server.stop();
});

describe("REST", () => {
  test("auth: register, login, me, refresh, logout", async () => {
    const ann = await newUser(server.url, "ann");
    const me = await ann.client.auth.me();
    assert.equal(me.id, ann.id);
    assert.equal(ann.client.auth.userId, ann.id);

    const newToken = await ann.client.auth.refresh();
    assert.ok(newToken);
    assert.equal((await ann.client.auth.me()).id, ann.id);

    await ann.client.auth.logout();
    assert.equal(ann.client.auth.signedIn, false);
    await assert.rejects(ann.client.auth.me(), (e: unknown) => e instanceof RtchatError && e.status === 401);

    const wrong = newClient(server.url);
    await assert.rejects(wrong.auth.login(ann.email, "not the password"), (e: unknown) => {
      assert.ok(e instanceof RtchatError);
      assert.equal(e.status, 401);
      assert.equal(e.code, "invalid_credentials");
      return true;
    });
  });

  test("errors carry status, code, detail and field errors", async () => {
    const ann = await newUser(server.url, "ann");
    await assert.rejects(
      ann.client.auth.register({ email: ann.email, name: "again", password: PASSWORD }),
      (e: unknown) => e instanceof RtchatError && e.status === 409 && e.code === "email_taken",
    );
    await assert.rejects(ann.client.chats.get(999_999_999), (e: unknown) => {
      assert.ok(e instanceof RtchatError);
      assert.equal(e.status, 404);
      assert.equal(e.code, "not_found");
      assert.ok(e.detail.length > 0);
      return true;
    });
    await assert.rejects(ann.client.users.list({ limit: 1000 }), (e: unknown) => {
      assert.ok(e instanceof RtchatError);
      assert.equal(e.status, 422);
      assert.equal(e.code, "validation_error");
      assert.equal(e.errors[0]?.field, "limit");
      return true;
    });
    const offline = newClient("http://127.0.0.1:9", { requestTimeoutMs: 2_000 });
    await assert.rejects(offline.misc.health(), (e: unknown) => {
      assert.ok(e instanceof RtchatError);
      assert.equal(e.status, 0);
      assert.equal(e.code, "network_error");
      assert.ok(e.isTransient);
      return true;
    });
  });

  test("users, chats, members, messages, read cursors and the event log", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const cid = await newUser(server.url, "cid");

    assert.equal((await ann.client.users.get(bob.id)).email, bob.email);
    const found = await ann.client.users.list({ q: bob.email, limit: 5 });
    assert.ok(found.users.some((u) => u.id === bob.id));

    const group = await ann.client.chats.create({ type: "group", title: "trip", participant_ids: [bob.id] });
    assert.deepEqual(group.participant_ids, [ann.id, bob.id].sort((a, b) => a - b));
    const priv = await ann.client.chats.create({ type: "private", participant_ids: [bob.id] });
    const again = await ann.client.chats.create({ type: "private", participant_ids: [bob.id] });
    assert.equal(again.id, priv.id);

    const renamed = await ann.client.chats.update(group.id, { title: "weekend trip" });
    assert.equal(renamed.title, "weekend trip");
    const grown = await ann.client.chats.addMembers(group.id, [cid.id]);
    assert.ok(grown.participant_ids.includes(cid.id));
    await cid.client.chats.leave(group.id);
    assert.ok(!(await ann.client.chats.get(group.id)).participant_ids.includes(cid.id));

    const first = await bob.client.messages.send(group.id, "hello");
    assert.equal(first.text, "hello");
    assert.equal(typeof first.client_id, "string");
    const second = await ann.client.messages.send(group.id, "hi bob");
    const edited = await ann.client.messages.edit(group.id, second.id, "hi, Bob");
    assert.equal(edited.text, "hi, Bob");
    assert.ok(edited.edited_at);

    const page = await ann.client.messages.list(group.id, { limit: 1 });
    assert.equal(page.messages.length, 1);
    assert.equal(page.has_more, true);
    const older = await ann.client.messages.list(group.id, { before: second.id });
    assert.deepEqual(older.messages.map((m) => m.id), [first.id]);

    let chats = await ann.client.chats.list();
    assert.equal(chats.chats.find((c) => c.id === group.id)?.unread_count, 1);
    await ann.client.chats.markRead(group.id, first.id);
    chats = await ann.client.chats.list({ limit: 100 });
    const view = chats.chats.find((c) => c.id === group.id);
    assert.equal(view?.unread_count, 0);
    assert.equal(view?.last_read_message_id, first.id);
    assert.equal((await ann.client.chats.listAll()).length, chats.chats.length);

    await ann.client.messages.delete(group.id, second.id);
    const log = await ann.client.events.list({ since: 0 });
    const types = log.events.map((e) => e.type);
    for (const t of ["create_chat", "update_chat", "new_message", "update_message", "delete_message", "read"]) {
      assert.ok(types.includes(t as (typeof types)[number]), `${t} in the log`);
    }
    assert.deepEqual(
      log.events.map((e) => e.seq),
      log.events.map((_, i) => i + 1),
    );

    await ann.client.chats.delete(group.id);
    await assert.rejects(bob.client.chats.get(group.id), (e: unknown) => e instanceof RtchatError && e.status === 404);
  });

  test("ops endpoints", async () => {
    const c = newClient(server.url);
    assert.deepEqual(await c.misc.health(), { status: "ok" });
    assert.deepEqual(await c.misc.readiness(), { status: "ok" });
    assert.match(await c.misc.metrics(), /^# (HELP|TYPE) /m);
    assert.match(await c.misc.openapi(), /^openapi: 3\.1/);
  });

  test("a 401 on an expired token is refreshed once and retried", async () => {
    const ann = await newUser(server.url, "ann");
    // Forge the stored access token into garbage: the next call gets a 401, refreshes with
    // the (valid) refresh token, and succeeds.
    const tokens = ann.client["session"].current;
    assert.ok(tokens);
    tokens.accessToken = "not.a.jwt";
    assert.equal((await ann.client.auth.me()).id, ann.id);
    assert.notEqual(ann.client["session"].current?.accessToken, "not.a.jwt");
  });
});

describe("rate limits", () => {
  let limited: RtchatServer;
  before(async () => {
    limited = await RtchatServer.start({ RTCHAT_RATE_MESSAGES_PER_SEC: "2", RTCHAT_RATE_MESSAGES_BURST: "1" });
  });
  after(async () => {
    await limited.stop();
  });

  test("429 rate_limited is waited out after Retry-After, and thrown when retries are off", async () => {
    let statuses: number[] = [];
    const counting: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      statuses.push(r.status);
      return r;
    };
    const ann = await newUser(limited.url, "ann", { fetch: counting, rateLimit: { retries: 5, maxRetryAfterSecs: 5 } });
    const chat = await ann.client.chats.create({ type: "group", participant_ids: [] });
    statuses = [];
    const sent = await Promise.all([1, 2, 3].map((i) => ann.client.messages.send(chat.id, `m${i}`)));
    assert.equal(sent.length, 3);
    assert.ok(statuses.includes(429), `the server answered 429 at least once: ${statuses.join(",")}`);
    assert.equal((await ann.client.messages.list(chat.id)).messages.length, 3);

    // Edits are limited too, and do not go through the send retries: with retries off the
    // 429 reaches the caller, typed.
    const strict = await newUser(limited.url, "bob", { rateLimit: { retries: 0 } });
    const chat2 = await strict.client.chats.create({ type: "group", participant_ids: [] });
    const m = await strict.client.messages.send(chat2.id, "m");
    const edits = await Promise.allSettled([1, 2, 3, 4].map((i) => strict.client.messages.edit(chat2.id, m.id, `e${i}`)));
    const limitedEdit = edits.find((r) => r.status === "rejected");
    assert.ok(limitedEdit && limitedEdit.status === "rejected", "an edit was rate limited");
    const e: unknown = limitedEdit.reason;
    assert.ok(e instanceof RtchatError);
    assert.equal(e.status, 429);
    assert.equal(e.code, "rate_limited");
    assert.ok(e.retryAfter !== undefined && e.retryAfter >= 1);
  });
});
