// The state helpers against a real rtchat: the chat list's unread counts follow the events
// and agree with the server after every step; the message window merges history, live
// events and pending sends without showing anything twice.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RtchatClient } from "../src/index.js";
import { RtchatServer } from "./support/server.js";
import { newUser, waitFor, closeClients } from "./support/helpers.js";

after(closeClients);

let server: RtchatServer;
before(async () => {
  server = await RtchatServer.start();
});
after(async () => {
  await server.stop();
});

/** The server's unread counts, by chat id. */
async function truth(client: RtchatClient): Promise<Map<number, number>> {
  return new Map((await client.chats.listAll()).map((c) => [c.id, c.unread_count]));
}

describe("state helpers", () => {
  test("the chat list's unread counts follow the events and match the server", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const early = await bob.client.chats.create({ type: "group", title: "early", participant_ids: [ann.id] });
    await bob.client.messages.send(early.id, "sent before Ann looked");

    const list = ann.client.chatList();
    await list.start();
    await waitFor("the stream", () => ann.client.events.state === "open");
    assert.equal(list.get(early.id)?.unread_count, 1);

    const settled = async (what: string) => {
      const expected = await truth(ann.client);
      await waitFor(what, () => [...expected].every(([id, n]) => list.get(id)?.unread_count === n) && list.list.length === expected.size);
    };

    // A chat created later arrives by event; messages by others count, Ann's own do not.
    const later = await bob.client.chats.create({ type: "group", title: "later", participant_ids: [ann.id] });
    const m1 = await bob.client.messages.send(later.id, "one");
    await bob.client.messages.send(later.id, "two");
    const m3 = await bob.client.messages.send(later.id, "three");
    await ann.client.messages.send(later.id, "mine");
    await settled("three unread in the later chat");
    assert.equal(list.get(later.id)?.unread_count, 3);
    assert.equal(list.totalUnread, 4);
    assert.equal(list.list[0]?.id, later.id, "most recent activity first");

    // Reading in the middle: the exact count comes from the server.
    await ann.client.chats.markRead(later.id, m1.id);
    await settled("two unread after reading the first");
    assert.equal(list.get(later.id)?.unread_count, 2);
    await ann.client.chats.markRead(later.id, m3.id);
    await settled("none unread after reading the last");
    assert.equal(list.get(later.id)?.unread_count, 0);

    // Deleting an unread message, then the chat.
    const m4 = await bob.client.messages.send(early.id, "soon gone");
    await settled("two unread in the early chat");
    await bob.client.messages.delete(early.id, m4.id);
    await settled("one unread again");
    assert.equal(list.get(early.id)?.unread_count, 1);
    await bob.client.chats.delete(early.id);
    await waitFor("the early chat gone", () => list.get(early.id) === undefined);
    assert.equal(list.totalUnread, 0);
    list.stop();
    ann.client.close();
    bob.client.close();
  });

  test("the message window merges pages, live events and pending sends, each once", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const chat = await bob.client.chats.create({ type: "group", participant_ids: [ann.id] });
    for (let i = 1; i <= 5; i++) await bob.client.messages.send(chat.id, `old ${i}`);

    const win = ann.client.messageWindow(chat.id, 2);
    await win.start();
    const texts = () => win.entries.map((e) => (e.kind === "message" ? e.message.text : `(pending) ${e.pending.text}`));
    assert.deepEqual(texts(), ["old 4", "old 5"]);
    assert.equal(win.hasOlder, true);
    while (await win.loadOlder()) {
      // paging back
    }
    assert.deepEqual(texts(), ["old 1", "old 2", "old 3", "old 4", "old 5"]);

    await waitFor("the stream", () => ann.client.events.state === "open");
    await bob.client.messages.send(chat.id, "live");
    await waitFor("the live message", () => texts().includes("live"));

    const sending = win.send("mine");
    assert.equal(texts().at(-1), "(pending) mine", "shown at once as pending");
    const mine = await sending;
    await waitFor("the event of the send", () => ann.client.events.lastSeq !== null && win.entries.length === 7);
    assert.deepEqual(texts(), ["old 1", "old 2", "old 3", "old 4", "old 5", "live", "mine"]);

    await ann.client.messages.edit(chat.id, mine.id, "mine, edited");
    await waitFor("the edit", () => texts().at(-1) === "mine, edited");
    await ann.client.messages.delete(chat.id, mine.id);
    await waitFor("the delete", () => !texts().includes("mine, edited"));
    assert.equal(win.entries.length, 6);
    win.stop();
    ann.client.close();
    bob.client.close();
  });
});
