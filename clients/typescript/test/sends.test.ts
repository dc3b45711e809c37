// Sends that survive the network, against a real rtchat: a send during an outage resolves
// once with one stored message; a send whose answer is lost is retried with the same
// client_id and stored once; a send confirmed by its new_message event before any answer;
// a 4xx is not retried.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RtchatError, type ChatEvent, type PendingSend } from "../src/index.js";
import { ChaosProxy } from "./support/proxy.js";
import { RtchatServer } from "./support/server.js";
import { delay, newUser, waitFor, closeClients } from "./support/helpers.js";

after(closeClients);

function urlOf(input: string | URL | Request): string {
  return typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
}

describe("reliable sends", () => {
  let server: RtchatServer;
  let proxy: ChaosProxy;
  before(async () => {
    server = await RtchatServer.start();
    proxy = await ChaosProxy.start(() => server.port);
  });
  after(async () => {
    await proxy.close();
    await server.stop();
  });

  async function allMessages(client: import("../src/index.js").RtchatClient, chatId: number) {
    return (await client.messages.list(chatId, { limit: 100 })).messages;
  }

  test("a send during an outage resolves once, with one stored message", async () => {
    const ann = await newUser(proxy.url, "ann");
    const chat = await ann.client.chats.create({ type: "group", participant_ids: [] });
    const pendingSeen: PendingSend[][] = [];
    ann.client.messages.onPending((p) => void pendingSeen.push([...p]));

    proxy.setDown(true);
    let settled = 0;
    const sending = ann.client.messages.send(chat.id, "through the outage").then((m) => {
      settled++;
      return m;
    });
    await waitFor("a failed attempt", () => (ann.client.messages.pending()[0]?.attempts ?? 0) >= 2);
    assert.equal(ann.client.messages.pending(chat.id).length, 1, "shown as pending meanwhile");
    proxy.setDown(false);
    const message = await sending;
    assert.equal(settled, 1);
    assert.equal(message.text, "through the outage");
    const stored = await allMessages(ann.client, chat.id);
    assert.deepEqual(stored.map((m) => m.id), [message.id]);
    assert.equal(ann.client.messages.pending().length, 0);
    assert.ok(pendingSeen.some((p) => p[0]?.lastError?.code === "network_error"));
    ann.client.close();
  });

  test("an answer lost on the way back: retried with the same client_id, stored once", async () => {
    const ann = await newUser(proxy.url, "ann");
    const chat = await ann.client.chats.create({ type: "group", participant_ids: [] });
    // Requests reach the server, answers never come back, until the network heals.
    proxy.dropResponses = true;
    const sending = ann.client.messages.send(chat.id, "answer lost", { clientId: "lost-answer-1" });
    await waitFor("two attempts", () => (ann.client.messages.pending()[0]?.attempts ?? 0) >= 2);
    proxy.dropResponses = false;
    const message = await sending;
    assert.equal(message.client_id, "lost-answer-1");
    const stored = await allMessages(ann.client, chat.id);
    assert.equal(stored.length, 1, "the server stored it once");
    assert.equal(stored[0]?.id, message.id);
    ann.client.close();
  });

  test("the new_message event confirms a send whose answers keep getting lost", async () => {
    let sent = 0;
    // A fetch that lets every send through but loses its answer. The attempt is counted when
    // it starts: the event may confirm the send before the lost answer even comes back.
    const losing: typeof fetch = async (input, init) => {
      const isSend = init?.method === "POST" && urlOf(input).endsWith("/messages");
      if (isSend) sent++;
      const response = await fetch(input, init);
      if (isSend) throw new TypeError("fetch failed: the connection was reset");
      return response;
    };
    const ann = await newUser(server.url, "ann", { fetch: losing });
    const chat = await ann.client.chats.create({ type: "group", participant_ids: [] });
    const events: ChatEvent[] = [];
    ann.client.events.subscribe((e) => void events.push(e));
    await waitFor("open", () => ann.client.events.state === "open");

    const message = await ann.client.messages.send(chat.id, "confirmed by the event");
    assert.ok(sent >= 1);
    assert.equal(message.text, "confirmed by the event");
    await waitFor("the event", () => events.length >= 1);
    const fromEvent = events.find((e) => e.type === "new_message");
    assert.equal(fromEvent?.type === "new_message" ? fromEvent.payload.id : undefined, message.id);
    await delay(300); // any retry still in flight would land now
    assert.equal((await allMessages(ann.client, chat.id)).length, 1);
    ann.client.close();
  });

  test("a 4xx is not retried", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const bobs = await bob.client.chats.create({ type: "group", participant_ids: [] });
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      if (init?.method === "POST" && urlOf(input).endsWith("/messages")) calls++;
      return fetch(input, init);
    };
    const spy = await newUser(server.url, "cid", { fetch: counting });
    await assert.rejects(spy.client.messages.send(bobs.id, "not a member"), (e: unknown) => {
      assert.ok(e instanceof RtchatError);
      assert.equal(e.status, 404);
      return true;
    });
    assert.equal(calls, 1);
    await assert.rejects(ann.client.messages.send(bobs.id, "  "), (e: unknown) => e instanceof RtchatError && e.status >= 400);
    assert.equal(spy.client.messages.pending().length, 0);
  });
});
