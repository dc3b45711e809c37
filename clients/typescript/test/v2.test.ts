// The v2 additions (docs/API.md, "v2") against a real rtchat: replies and mentions on send
// and edit, reactions (percent-encoded emoji, idempotent, durable `reaction` events in seq
// order, `my_reactions` in the message window), read cursors, unread totals, message search,
// and presence (a frame to a chat partner's subscriber, and `GET /presence`).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RtchatError, type ChatEvent, type Presence, type Reaction, type ReactionEvent } from "../src/index.js";
import { RtchatServer } from "./support/server.js";
import { closeClients, consecutive, newUser, waitFor } from "./support/helpers.js";

after(closeClients);

/** Offline is announced this long after the last socket closed (the default is 5 s). */
const PRESENCE_GRACE_SECS = "1";

let server: RtchatServer;
before(async () => {
  server = await RtchatServer.start({ RTCHAT_PRESENCE_GRACE_SECS: PRESENCE_GRACE_SECS });
});
after(async () => {
  await server.stop();
});

/** A 422 with this field (or this code) in it. */
function rejected422(field: string | null, code = "validation_error") {
  return (e: unknown): boolean => {
    assert.ok(e instanceof RtchatError, String(e));
    assert.equal(e.status, 422);
    assert.equal(e.code, code);
    if (field !== null) assert.ok(e.errors.some((f) => f.field === field), JSON.stringify(e.errors));
    return true;
  };
}

describe("v2", () => {
  test("replies and mentions on send and edit, counted in unread_mentions and GET /unread", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const eve = await newUser(server.url, "eve");
    const chat = await ann.client.chats.create({ type: "group", title: "v2", participant_ids: [bob.id] });
    const other = await ann.client.chats.create({ type: "group", title: "other", participant_ids: [] });
    const elsewhere = await ann.client.messages.send(other.id, "in another chat");

    const bobsList = bob.client.chatList();
    await bobsList.start();
    await waitFor("bob's stream", () => bob.client.events.state === "open");

    const question = await bob.client.messages.send(chat.id, "lunch?");
    assert.equal(question.reply_to, null);
    assert.deepEqual(question.mentions, []);
    assert.deepEqual(question.reactions, []);

    const answer = await ann.client.messages.send(chat.id, "@bob yes", { replyTo: question.id, mentions: [bob.id, bob.id] });
    assert.equal(answer.reply_to, question.id);
    assert.deepEqual(answer.mentions, [bob.id], "duplicates dropped");

    await assert.rejects(ann.client.messages.send(chat.id, "wrong chat", { replyTo: elsewhere.id }), rejected422("reply_to"));
    await assert.rejects(ann.client.messages.send(chat.id, "stranger", { mentions: [eve.id] }), rejected422("mentions"));

    let view = await bob.client.chats.get(chat.id);
    assert.equal(view.unread_count, 1, "bob's own message does not count");
    assert.equal(view.unread_mentions, 1);
    assert.deepEqual(await bob.client.misc.unread(), { messages: 1, chats: 1, mentions: 1 });
    await waitFor("the mention in bob's chat list", () => bobsList.totalMentions === 1 && bobsList.totalUnread === 1);

    // An edit of the mentions alone keeps the text; dropping the mention drops the count.
    const edited = await ann.client.messages.edit(chat.id, answer.id, { mentions: [] });
    assert.equal(edited.text, "@bob yes");
    assert.deepEqual(edited.mentions, []);
    view = await bob.client.chats.get(chat.id);
    assert.equal(view.unread_mentions, 0);
    await waitFor("the edit in bob's chat list", () => bobsList.totalMentions === 0 && bobsList.totalUnread === 1);
    const again = await ann.client.messages.edit(chat.id, answer.id, { text: "@bob yes!", mentions: [bob.id] });
    assert.deepEqual([again.text, again.mentions], ["@bob yes!", [bob.id]]);
    assert.deepEqual(await bob.client.misc.unread(), { messages: 1, chats: 1, mentions: 1 });

    await bob.client.chats.markRead(chat.id, answer.id);
    assert.deepEqual(await bob.client.misc.unread(), { messages: 0, chats: 0, mentions: 0 });
    await waitFor("bob's chat list read", () => bobsList.totalMentions === 0 && bobsList.totalUnread === 0);
    bobsList.stop();
    const list = await bob.client.messages.list(chat.id);
    assert.deepEqual(
      list.messages.map((m) => [m.id, m.reply_to, m.mentions]),
      [
        [question.id, null, []],
        [answer.id, question.id, [bob.id]],
      ],
    );
  });

  test("reactions: percent-encoded emoji, idempotent, reaction events in seq order, my_reactions", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const chat = await ann.client.chats.create({ type: "group", participant_ids: [bob.id] });
    const m = await bob.client.messages.send(chat.id, "react to me");

    const seen: ChatEvent[] = [];
    bob.client.events.subscribe((e) => void seen.push(e), { since: 0 });
    const win = ann.client.messageWindow(chat.id);
    await win.start();
    await waitFor("both streams", () => bob.client.events.state === "open" && ann.client.events.state === "open");
    const before = bob.client.events.lastSeq ?? 0;

    // "#" and "?" would end the path if they were not percent-encoded; the flag is 8 bytes.
    const odd = "#?%";
    await ann.client.messages.react(chat.id, m.id, "👍");
    await ann.client.messages.react(chat.id, m.id, "👍"); // again: nothing changes, no event
    await bob.client.messages.react(chat.id, m.id, "👍");
    await ann.client.messages.react(chat.id, m.id, "🇺🇦");
    await ann.client.messages.react(chat.id, m.id, odd);
    await ann.client.messages.unreact(chat.id, m.id, odd);
    await ann.client.messages.unreact(chat.id, m.id, odd); // not there: no event

    const expected: [number, string, boolean, number][] = [
      [ann.id, "👍", true, 1],
      [bob.id, "👍", true, 2],
      [ann.id, "🇺🇦", true, 1],
      [ann.id, odd, true, 1],
      [ann.id, odd, false, 0],
    ];
    const reactions = () => seen.filter((e): e is ReactionEvent => e.type === "reaction" && e.seq > before);
    await waitFor("five reaction events", () => reactions().length >= expected.length);
    assert.deepEqual(
      reactions().map((e) => [e.payload.user_id, e.payload.emoji, e.payload.added, e.payload.count]),
      expected,
    );
    for (const e of reactions()) assert.deepEqual([e.payload.chat_id, e.payload.message_id], [chat.id, m.id]);
    const seqs = seen.map((e) => e.seq);
    assert.ok(consecutive(seqs), `consecutive seqs: ${seqs.join(",")}`);
    assert.equal(bob.client.events.stats.duplicates + bob.client.events.stats.gaps, 0);

    // The server's view, and the window's: counts in first-added order, and the caller's own.
    const page = await ann.client.messages.list(chat.id);
    const stored = page.messages.find((x) => x.id === m.id);
    assert.deepEqual(stored?.reactions, [
      { emoji: "👍", count: 2 },
      { emoji: "🇺🇦", count: 1 },
    ]);
    assert.deepEqual(stored?.my_reactions, ["👍", "🇺🇦"]);
    const counts = (rs: readonly Reaction[] | undefined) => (rs ?? []).map((r) => `${r.emoji}${r.count}`).join(" ");
    await waitFor("the window's reactions", () => {
      const held = win.get(m.id);
      return counts(held?.reactions) === counts(stored?.reactions) && held?.my_reactions?.length === 2;
    });
    assert.deepEqual(new Set(win.get(m.id)?.my_reactions), new Set(["👍", "🇺🇦"]));
    const bobsView = (await bob.client.messages.list(chat.id)).messages.find((x) => x.id === m.id);
    assert.deepEqual(bobsView?.my_reactions, ["👍"]);

    // An edit's event has no my_reactions: the window keeps the caller's.
    await bob.client.messages.edit(chat.id, m.id, "react to me, edited");
    await waitFor("the edit in the window", () => win.get(m.id)?.text === "react to me, edited");
    assert.deepEqual(new Set(win.get(m.id)?.my_reactions), new Set(["👍", "🇺🇦"]));
    await ann.client.messages.unreact(chat.id, m.id, "👍");
    await waitFor("ann's 👍 gone from the window", () => win.get(m.id)?.my_reactions?.join() === "🇺🇦");
    assert.equal(counts(win.get(m.id)?.reactions), "👍1 🇺🇦1");

    for (const bad of [" ", "a b", "x".repeat(33)]) {
      await assert.rejects(ann.client.messages.react(chat.id, m.id, bad), (e: unknown) => e instanceof RtchatError && e.status === 422);
    }
    win.stop();
  });

  test("read cursors of every member", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const cid = await newUser(server.url, "cid");
    const chat = await ann.client.chats.create({ type: "group", participant_ids: [cid.id, bob.id] });
    const m1 = await ann.client.messages.send(chat.id, "one");
    const m2 = await ann.client.messages.send(chat.id, "two");
    await bob.client.chats.markRead(chat.id, m2.id);
    await cid.client.chats.markRead(chat.id, m1.id);
    const { reads } = await ann.client.chats.reads(chat.id);
    assert.deepEqual(
      reads,
      [
        { user_id: ann.id, last_read_message_id: null },
        { user_id: bob.id, last_read_message_id: m2.id },
        { user_id: cid.id, last_read_message_id: m1.id },
      ].sort((a, b) => a.user_id - b.user_id),
    );
    const stranger = await newUser(server.url, "eve");
    await assert.rejects(stranger.client.chats.reads(chat.id), (e: unknown) => e instanceof RtchatError && e.status === 404);
  });

  test("message search: every word, the last as a prefix, newest first, by chat, paged", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const word = `zq${Date.now().toString(36)}`; // unique to this run
    const a = await ann.client.chats.create({ type: "group", participant_ids: [bob.id] });
    const b = await ann.client.chats.create({ type: "group", participant_ids: [] });
    const m1 = await ann.client.messages.send(a.id, `${word} apple pie`);
    const m2 = await bob.client.messages.send(a.id, `яблоко ${word} apple`);
    const m3 = await ann.client.messages.send(b.id, `${word} applesauce`);
    await ann.client.messages.send(a.id, `${word} pear`);

    const all = await ann.client.messages.search({ q: `${word} appl` });
    assert.deepEqual(all.messages.map((m) => m.id), [m3.id, m2.id, m1.id], "newest first, prefix on the last word");
    assert.equal(all.has_more, false);
    const inA = await ann.client.messages.search({ q: `${word} APPLE`, chatId: a.id });
    assert.deepEqual(inA.messages.map((m) => m.id), [m2.id, m1.id]);
    const russian = await ann.client.messages.search({ q: `яблоко ${word}` });
    assert.deepEqual(russian.messages.map((m) => m.id), [m2.id]);

    const first = await ann.client.messages.search({ q: `${word} apple`, limit: 1 });
    assert.deepEqual([first.messages.map((m) => m.id), first.has_more], [[m3.id], true]);
    const next = await ann.client.messages.search({ q: `${word} apple`, limit: 1, before: m3.id });
    assert.deepEqual(next.messages.map((m) => m.id), [m2.id]);

    // Bob is not in chat b: he finds only what he may see, and b itself is hidden.
    const bobs = await bob.client.messages.search({ q: word });
    assert.ok(!bobs.messages.some((m) => m.chat_id === b.id));
    await assert.rejects(bob.client.messages.search({ q: word, chatId: b.id }), (e: unknown) => e instanceof RtchatError && e.status === 404);
    await assert.rejects(ann.client.messages.search({ q: "" }), rejected422("q"));
  });

  test("presence: a frame to a chat partner's subscriber, and GET /presence", async () => {
    const ann = await newUser(server.url, "ann");
    const bob = await newUser(server.url, "bob");
    const stranger = await newUser(server.url, "eve");
    await ann.client.chats.create({ type: "private", participant_ids: [bob.id] });

    const frames: Presence[] = [];
    ann.client.events.subscribe(() => undefined, { onPresence: (p) => void frames.push(p) });
    await waitFor("ann's stream", () => ann.client.events.state === "open");
    // The order asked; the caller's own socket may take a moment to be recorded.
    let asked = await ann.client.misc.presence([bob.id, stranger.id, ann.id]);
    await waitFor("ann online to herself", async () => {
      asked = await ann.client.misc.presence([bob.id, stranger.id, ann.id]);
      return asked.presence[2]?.online === true;
    });
    assert.deepEqual(
      asked.presence.map((p) => [p.user_id, p.online, p.last_seen_at]),
      [
        [bob.id, false, null],
        [stranger.id, false, null],
        [ann.id, true, null],
      ],
    );

    bob.client.events.subscribe(() => undefined);
    await waitFor("bob online", () => frames.some((p) => p.user_id === bob.id && p.online));
    assert.equal(frames.find((p) => p.user_id === bob.id)?.last_seen_at, null);
    assert.ok(!frames.some((p) => p.user_id === ann.id), "no presence of oneself");
    asked = await ann.client.misc.presence([bob.id]);
    assert.deepEqual(asked.presence, [{ user_id: bob.id, online: true, last_seen_at: null }]);

    // Bob's stranger learns nothing, and is told nothing.
    const theirs = await stranger.client.misc.presence([bob.id]);
    assert.deepEqual(theirs.presence, [{ user_id: bob.id, online: false, last_seen_at: null }]);

    bob.client.close();
    await waitFor("bob offline", () => frames.some((p) => p.user_id === bob.id && !p.online));
    const offline = frames.find((p) => p.user_id === bob.id && !p.online);
    assert.ok(offline?.last_seen_at && !Number.isNaN(Date.parse(offline.last_seen_at)));
    asked = await ann.client.misc.presence([bob.id]);
    assert.equal(asked.presence[0]?.online, false);
    assert.equal(asked.presence[0]?.last_seen_at, offline.last_seen_at);

    await assert.rejects(
      ann.client.misc.presence(Array.from({ length: 101 }, (_, i) => i + 1)),
      (e: unknown) => e instanceof RtchatError && e.status === 422,
    );
  });
});
