// rtchat demo page, on @rtchat/client: log in or register, list chats, create a chat, read and
// send messages, and see everything live; v2: replies with a quote, @mentions with their own
// badge, reactions, "seen by" under the last message, message search, and who is online. The
// client does the hard parts (the socket, resume with `since`, token refresh, retried sends,
// unread counts, reaction counts); this file is the page around it.
// Bundled by scripts/build-demo.mjs into ../../static/app.js, which the server compiles in.
import {
  RtchatClient,
  RtchatError,
  WebStorageCursorStore,
  WebStorageTokenStore,
  type ChatListState,
  type ChatEvent,
  type ChatView,
  type Id,
  type Message,
  type MessageWindow,
  type Presence,
  type StreamState,
  type Subscription,
  type User,
  type WindowEntry,
} from "../src/index.js";

// -----------------------------------------------------------------------------------------
// Elements and state
// -----------------------------------------------------------------------------------------
function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from the page`);
  return e as T;
}
const el = {
  error: $("error"),
  wsStatus: $("ws-status"),
  whoami: $("whoami"),
  unreadTotal: $("unread-total"),
  logout: $<HTMLButtonElement>("logout"),
  authPanel: $("auth-panel"),
  authForm: $<HTMLFormElement>("auth-form"),
  email: $<HTMLInputElement>("email"),
  password: $<HTMLInputElement>("password"),
  name: $<HTMLInputElement>("name"),
  login: $<HTMLButtonElement>("login"),
  register: $<HTMLButtonElement>("register"),
  authError: $("auth-error"),
  appPanel: $("app-panel"),
  chatList: $("chat-list"),
  chatListEmpty: $("chat-list-empty"),
  refreshChats: $<HTMLButtonElement>("refresh-chats"),
  newChatForm: $<HTMLFormElement>("new-chat-form"),
  newChatType: $<HTMLSelectElement>("new-chat-type"),
  newChatTitle: $<HTMLInputElement>("new-chat-title"),
  newChatIds: $<HTMLInputElement>("new-chat-ids"),
  createChat: $<HTMLButtonElement>("create-chat"),
  userSearchForm: $<HTMLFormElement>("user-search-form"),
  userSearch: $<HTMLInputElement>("user-search"),
  userResults: $("user-results"),
  searchForm: $<HTMLFormElement>("message-search-form"),
  search: $<HTMLInputElement>("message-search"),
  searchResults: $("search-results"),
  chatTitle: $("chat-title"),
  chatMembers: $("chat-members"),
  loadOlder: $<HTMLButtonElement>("load-older"),
  messages: $("messages"),
  seenBy: $("seen-by"),
  typing: $("typing"),
  replyBar: $("reply-bar"),
  replyQuote: $("reply-quote"),
  replyCancel: $<HTMLButtonElement>("reply-cancel"),
  messageForm: $<HTMLFormElement>("message-form"),
  messageText: $<HTMLInputElement>("message-text"),
  send: $<HTMLButtonElement>("send"),
};

/** Send a `typing` frame at most this often while the user types. */
const TYPING_SEND_EVERY_MS = 3000;
/** How long someone else's `typing` stays on screen without a new one. */
const TYPING_SHOW_MS = 4000;
/** Messages per page. */
const PAGE_SIZE = 50;
/** The reaction picker's choice. */
const PICKER_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
/** `GET /presence` takes at most this many ids per call. */
const PRESENCE_BATCH = 100;
/** Search results shown. */
const SEARCH_LIMIT = 20;
/** Pages of history loaded at most to reach a search result in its chat. */
const JUMP_MAX_PAGES = 5;
/** Chats larger than this get no live presence frames or others' read events (the server
 * bounds both at 100 members: README, Presence; docs/API.md, v2): the page asks again... */
const LIVE_STATE_MAX_MEMBERS = 100;
/** ...this often while such a chat is open. */
const BIG_CHAT_POLL_MS = 30_000;

// The session and the cursor survive a reload of this tab (not shared with other tabs).
const client = new RtchatClient({
  baseUrl: location.origin,
  tokenStore: new WebStorageTokenStore(sessionStorage, "rtchat.session"),
  cursorStore: new WebStorageCursorStore(sessionStorage, "rtchat.cursor."),
});

const state = {
  me: null as User | null,
  chats: null as ChatListState | null,
  window: null as MessageWindow | null,
  stream: null as Subscription | null,
  /** user id -> User, or null while it is being fetched */
  users: new Map<Id, User | null>(),
  currentChatId: null as Id | null,
  lastTypingSentAt: 0,
  typingUsers: new Map<Id, ReturnType<typeof setTimeout>>(),
  readTimer: undefined as ReturnType<typeof setTimeout> | undefined,
  renderQueued: false,
  /** The open chat's read cursors (user id -> last read message id). */
  reads: new Map<Id, Id | null>(),
  /** Replied-to messages the window does not hold: the message, null when deleted, or
   * "loading". Only for the open chat. */
  quotes: new Map<Id, Message | null | "loading">(),
  /** Presence of the users the page shows (members of the open chat, private partners). */
  presence: new Map<Id, Presence>(),
  replyTo: null as Message | null,
  /** The message whose reaction picker is open. */
  pickerFor: null as Id | null,
  /** A search result just jumped to, highlighted for a moment. */
  flashId: null as Id | null,
  bigChatTimer: undefined as ReturnType<typeof setInterval> | undefined,
};

// -----------------------------------------------------------------------------------------
// Small helpers
// -----------------------------------------------------------------------------------------
function describeError(err: unknown): string {
  if (err instanceof RtchatError) {
    if (err.code === "network_error") return "The server cannot be reached. Check your connection.";
    const fields = err.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
    let text = fields ? `${err.detail} (${fields})` : err.detail;
    if (err.code === "rate_limited" && err.retryAfter) text += ` — retry in ${err.retryAfter} s`;
    return text;
  }
  return err instanceof Error ? err.message : String(err);
}

let errorTimer: ReturnType<typeof setTimeout> | undefined;
function showError(err: unknown): void {
  el.error.textContent = typeof err === "string" ? err : describeError(err);
  el.error.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => (el.error.hidden = true), 10000);
}

function clearError(): void {
  el.error.hidden = true;
  el.authError.hidden = true;
}

function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function node(tag: string, className?: string, text?: string): HTMLElement {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

// -----------------------------------------------------------------------------------------
// Session
// -----------------------------------------------------------------------------------------
async function logIn(email: string, password: string): Promise<void> {
  await client.auth.login(email, password);
  await startSession();
}

async function register(email: string, password: string, name: string): Promise<void> {
  await client.auth.register({ email, name, password });
  await logIn(email, password);
}

async function startSession(): Promise<void> {
  const me = await client.auth.me();
  state.me = me;
  state.users.set(me.id, me);
  el.whoami.textContent = `${me.name} (#${me.id})`;
  el.whoami.dataset.userId = String(me.id);
  el.authPanel.hidden = true;
  el.appPanel.hidden = false;
  el.logout.hidden = false;
  el.password.value = "";
  // The page's own listener: connection status and typing. The chat list and the open
  // chat's window follow the same stream through their own subscriptions.
  state.stream = client.events.subscribe(onEvent, {
    onState: setStatus,
    onTyping: onTyping,
    onPresence: (p) => {
      state.presence.set(p.user_id, p);
      queueRender();
    },
    // Presence is not replayed: after every (re)connect, ask for what the page shows.
    onReady: () => void refreshPresence([...shownUsers()]),
  });
  const chats = client.chatList();
  state.chats = chats;
  chats.changes.add(() => {
    if (state.currentChatId !== null && !chats.get(state.currentChatId)) closeChat();
    queueRender();
  });
  await chats.start();
  void refreshPresence([...shownUsers()]);
  renderAll();
}

/** The page's own view of the events: read cursors, quotes; the chat list and the window
 * follow the stream themselves. */
function onEvent(e: ChatEvent): void {
  if (e.type === "read" && e.payload.chat_id === state.currentChatId) {
    const { user_id, message_id } = e.payload;
    if ((state.reads.get(user_id) ?? 0) < message_id) state.reads.set(user_id, message_id);
  } else if (e.type === "delete_message" && state.quotes.has(e.payload.id)) {
    state.quotes.set(e.payload.id, null);
  } else if (e.type === "update_message" && state.quotes.has(e.payload.id)) {
    state.quotes.set(e.payload.id, e.payload);
  } else if ((e.type === "create_chat" || e.type === "update_chat") && (e.payload.id === state.currentChatId || e.payload.type === "private")) {
    // New faces on the page: the open chat's new members, a new private partner.
    void refreshPresence(e.payload.participant_ids.filter((id) => id !== state.me?.id && !state.presence.has(id)));
  }
  queueRender();
}

/** Back to the login form; `message` says why. */
function signOut(message?: string): void {
  state.stream?.unsubscribe();
  state.chats?.stop();
  state.window?.stop();
  clearInterval(state.bigChatTimer);
  Object.assign(state, { me: null, chats: null, window: null, stream: null, currentChatId: null, replyTo: null, pickerFor: null });
  state.users.clear();
  state.typingUsers.clear();
  state.reads.clear();
  state.quotes.clear();
  state.presence.clear();
  el.searchResults.replaceChildren();
  el.whoami.textContent = "";
  delete el.whoami.dataset.userId;
  el.logout.hidden = true;
  el.appPanel.hidden = true;
  el.authPanel.hidden = false;
  setStatus("idle");
  renderAll();
  if (message) {
    el.authError.textContent = message;
    el.authError.hidden = false;
  }
}

function setStatus(s: StreamState): void {
  const [kind, text] =
    s === "open"
      ? ["open", "live"]
      : s === "connecting"
        ? ["connecting", "connecting…"]
        : s === "waiting"
          ? ["reconnecting", "reconnecting…"]
          : ["offline", "offline"];
  el.wsStatus.dataset.state = kind;
  el.wsStatus.textContent = text;
  if (s === "signed_out" && state.me) signOut("Your session has ended. Please log in again.");
}

// -----------------------------------------------------------------------------------------
// Chats
// -----------------------------------------------------------------------------------------
function chatName(c: ChatView): string {
  if (c.title) return c.title;
  if (c.type === "private" && state.me) {
    const me = state.me.id;
    const other = c.participant_ids.find((id) => id !== me);
    if (other !== undefined) return userName(other);
  }
  return `${c.type === "group" ? "Group" : "Chat"} #${c.id}`;
}

async function createChat(): Promise<void> {
  const raw = el.newChatIds.value.split(/[\s,;]+/).filter(Boolean);
  const ids = raw.map(Number);
  if (ids.some((n) => !Number.isInteger(n) || n <= 0)) {
    showError("User ids must be positive whole numbers, separated by commas.");
    return;
  }
  const type = el.newChatType.value === "private" ? "private" : "group";
  const title = el.newChatTitle.value.trim();
  el.createChat.disabled = true;
  try {
    const chat = await client.chats.create(title ? { type, participant_ids: ids, title } : { type, participant_ids: ids });
    clearError();
    el.newChatIds.value = "";
    el.newChatTitle.value = "";
    // The create_chat event brings it to the list too; the answer is here first.
    state.chats?.apply({ type: "create_chat", seq: 0, payload: chat });
    await openChat(chat.id);
  } catch (err) {
    showError(err);
  } finally {
    el.createChat.disabled = false;
  }
}

// -----------------------------------------------------------------------------------------
// Messages
// -----------------------------------------------------------------------------------------
async function openChat(chatId: Id): Promise<void> {
  state.window?.stop();
  state.currentChatId = chatId;
  state.typingUsers.clear();
  state.reads.clear();
  state.quotes.clear();
  state.replyTo = null;
  state.pickerFor = null;
  void loadReads(chatId);
  const members = state.chats?.get(chatId)?.participant_ids ?? [];
  void refreshPresence(members.filter((id) => !state.presence.has(id)));
  clearInterval(state.bigChatTimer);
  state.bigChatTimer = setInterval(() => {
    const open = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
    if (!open || open.participant_ids.length <= LIVE_STATE_MAX_MEMBERS) return;
    void loadReads(open.id);
    void refreshPresence(open.participant_ids.filter((id) => id !== state.me?.id));
  }, BIG_CHAT_POLL_MS);
  const win = client.messageWindow(chatId, PAGE_SIZE);
  state.window = win;
  let last = -1;
  win.changes.add((entries) => {
    const atBottom = isAtBottom();
    renderMessages();
    const newest = lastStoredId(entries);
    if (newest !== last) {
      last = newest;
      if (atBottom) scrollToBottom();
      scheduleMarkRead();
    }
  });
  renderAll();
  await win.start();
  if (state.window !== win) return;
  renderAll();
  scrollToBottom();
  scheduleMarkRead();
  el.messageText.focus();
}

function closeChat(): void {
  clearInterval(state.bigChatTimer);
  state.window?.stop();
  state.window = null;
  state.currentChatId = null;
  state.typingUsers.clear();
  state.replyTo = null;
  queueRender();
}

function lastStoredId(entries: readonly WindowEntry[]): number {
  let last = 0;
  for (const e of entries) if (e.kind === "message" && e.message.id > last) last = e.message.id;
  return last;
}

async function loadOlder(): Promise<void> {
  const win = state.window;
  if (!win) return;
  try {
    const oldHeight = el.messages.scrollHeight;
    await win.loadOlder();
    el.messages.scrollTop += el.messages.scrollHeight - oldHeight;
  } catch (err) {
    showError(err);
  }
}

async function sendMessage(): Promise<void> {
  const win = state.window;
  const text = el.messageText.value;
  if (!win || text.trim() === "") return;
  const replying = state.replyTo;
  const replyTo = replying?.id;
  const mentions = mentionsIn(text);
  // Shown as pending at once; the client retries with the same client_id until stored.
  el.messageText.value = "";
  state.replyTo = null;
  renderReplyBar();
  try {
    await win.send(text, { ...(replyTo === undefined ? {} : { replyTo }), ...(mentions.length ? { mentions } : {}) });
    clearError();
    scrollToBottom();
  } catch (err) {
    if (el.messageText.value === "") {
      el.messageText.value = text;
      state.replyTo = replying;
      renderReplyBar();
    }
    showError(err);
  } finally {
    el.messageText.focus();
  }
}

function scheduleMarkRead(): void {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(() => void markRead(), 300);
}

async function markRead(): Promise<void> {
  const chatId = state.currentChatId;
  const chat = chatId === null ? undefined : state.chats?.get(chatId);
  const win = state.window;
  if (!chat || !win || !state.me || chatId === null) return;
  const me = state.me.id;
  let lastFromOthers = 0;
  for (const e of win.entries) {
    if (e.kind === "message" && e.message.sender_id !== me && e.message.id > lastFromOthers) lastFromOthers = e.message.id;
  }
  // Only messages from others make a read receipt worth sending.
  if (lastFromOthers === 0 || (chat.last_read_message_id ?? 0) >= lastFromOthers) return;
  try {
    await client.chats.markRead(chatId, lastStoredId(win.entries));
  } catch {
    // Not worth bothering the user: the next message marks it again.
  }
}

/** Members named as `@name` in the text (a name with spaces matches up to its first word). */
function mentionsIn(text: string): Id[] {
  const chat = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
  if (!chat) return [];
  const words = new Set([...text.matchAll(/@([^\s@,.!?;:]+)/gu)].map((m) => (m[1] ?? "").toLowerCase()));
  return chat.participant_ids.filter((id) => {
    const u = state.users.get(id);
    return id !== state.me?.id && u && (words.has(u.name.toLowerCase()) || words.has(u.name.split(/\s/)[0]?.toLowerCase() ?? ""));
  });
}

// -----------------------------------------------------------------------------------------
// Replies, reactions, read receipts (v2)
// -----------------------------------------------------------------------------------------
function startReply(messageId: Id): void {
  const m = state.window?.get(messageId);
  if (!m) return;
  state.replyTo = m;
  renderReplyBar();
  el.messageText.focus();
}

/** The message a reply quotes: from the window, or fetched once (null when deleted). */
function quoteOf(chatId: Id, id: Id): Message | null | "loading" {
  const held = state.window?.get(id);
  if (held) return held;
  const known = state.quotes.get(id);
  if (known !== undefined) return known;
  // Not held but inside the window's range: it was deleted.
  const oldest = state.window?.entries.find((e) => e.kind === "message");
  if (oldest?.kind === "message" && oldest.message.id < id) return null;
  state.quotes.set(id, "loading");
  // There is no GET of one message: the first message after id - 1 is it, if it still exists.
  client.messages
    .list(chatId, { after: id - 1, limit: 1 })
    .then((page) => {
      if (state.currentChatId !== chatId) return;
      const m = page.messages[0];
      state.quotes.set(id, m?.id === id ? m : null);
      queueRender();
    })
    .catch(() => undefined); // stays "…" until the chat is opened again
  return "loading";
}

async function toggleReaction(messageId: Id, emoji: string): Promise<void> {
  const chatId = state.currentChatId;
  const m = state.window?.get(messageId);
  if (chatId === null || !m) return;
  state.pickerFor = null;
  queueRender();
  try {
    // The reaction event updates the counts (and my_reactions) in the window.
    if (m.my_reactions?.includes(emoji)) await client.messages.unreact(chatId, messageId, emoji);
    else await client.messages.react(chatId, messageId, emoji);
  } catch (err) {
    showError(err);
  }
}

async function loadReads(chatId: Id): Promise<void> {
  try {
    const { reads } = await client.chats.reads(chatId);
    if (state.currentChatId !== chatId) return;
    // Read events may have come meanwhile: a cursor only moves forward.
    for (const r of reads) {
      const known = state.reads.get(r.user_id) ?? null;
      state.reads.set(r.user_id, Math.max(known ?? 0, r.last_read_message_id ?? 0) || null);
    }
    queueRender();
  } catch {
    // A v1 server, or the chat went: no "seen by".
  }
}

// -----------------------------------------------------------------------------------------
// Presence (v2)
// -----------------------------------------------------------------------------------------
/** The users whose presence the page shows: the open chat's members, private partners. */
function shownUsers(): Set<Id> {
  const ids = new Set<Id>();
  const me = state.me?.id;
  const open = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
  for (const id of open?.participant_ids ?? []) ids.add(id);
  for (const c of state.chats?.list ?? []) {
    if (c.type === "private") for (const id of c.participant_ids) ids.add(id);
  }
  if (me !== undefined) ids.delete(me);
  return ids;
}

async function refreshPresence(ids: Id[]): Promise<void> {
  for (let i = 0; i < ids.length; i += PRESENCE_BATCH) {
    try {
      const { presence } = await client.misc.presence(ids.slice(i, i + PRESENCE_BATCH));
      for (const p of presence) state.presence.set(p.user_id, p);
    } catch {
      return; // a v1 server: no dots
    }
  }
  if (ids.length > 0) queueRender();
}

function presenceText(p: Presence | undefined): string {
  if (!p) return "";
  if (p.online) return "online";
  if (!p.last_seen_at) return "offline";
  const d = new Date(p.last_seen_at);
  const today = d.toDateString() === new Date().toDateString();
  return `last seen ${today ? "" : d.toLocaleDateString() + " "}${formatTime(p.last_seen_at)}`;
}

/** A member's name with a green dot when online, "last seen ..." otherwise. */
function memberChip(id: Id): HTMLElement {
  const p = state.presence.get(id);
  const chip = node("span", "member");
  chip.dataset.userId = String(id);
  if (p) chip.dataset.online = String(p.online);
  chip.title = presenceText(p);
  if (id === state.me?.id) {
    chip.append("you");
    return chip;
  }
  chip.append(node("span", "dot"), `${userName(id)} (#${id})`);
  if (p && !p.online) chip.append(node("span", "last-seen", presenceText(p)));
  return chip;
}

// -----------------------------------------------------------------------------------------
// Message search (v2)
// -----------------------------------------------------------------------------------------
async function searchMessages(): Promise<void> {
  const q = el.search.value.trim();
  if (!q) {
    el.searchResults.replaceChildren();
    return;
  }
  try {
    const res = await client.messages.search({ q, limit: SEARCH_LIMIT });
    el.searchResults.replaceChildren(
      ...res.messages.map((m) => {
        const li = node("li");
        const b = node("button", "search-hit") as HTMLButtonElement;
        b.type = "button";
        b.dataset.chatId = String(m.chat_id);
        b.dataset.messageId = String(m.id);
        const chat = state.chats?.get(m.chat_id);
        b.append(
          node("span", "hit-meta", `${chat ? chatName(chat) : `chat #${m.chat_id}`} · ${userName(m.sender_id)} · ${formatTime(m.created_at)}`),
          node("span", "hit-text", m.text),
        );
        li.append(b);
        return li;
      }),
    );
    if (res.messages.length === 0) el.searchResults.append(node("li", "hint", "No messages found."));
  } catch (err) {
    showError(err);
  }
}

/** Opens the chat of a search result and shows the message (loading a few older pages). */
async function jumpTo(chatId: Id, messageId: Id): Promise<void> {
  if (state.currentChatId !== chatId) await openChat(chatId);
  const win = state.window;
  for (let i = 0; win && !win.get(messageId) && win.hasOlder && i < JUMP_MAX_PAGES; i++) await win.loadOlder();
  state.flashId = messageId;
  renderAll();
  el.messages.querySelector(`li[data-message-id="${messageId}"]`)?.scrollIntoView({ block: "center" });
  setTimeout(() => {
    if (state.flashId !== messageId) return;
    state.flashId = null;
    queueRender();
  }, 2000);
}

// -----------------------------------------------------------------------------------------
// Typing
// -----------------------------------------------------------------------------------------
function onTyping(p: { chat_id: Id; user_id: Id }): void {
  if (p.chat_id !== state.currentChatId || !state.me || p.user_id === state.me.id) return;
  clearTimeout(state.typingUsers.get(p.user_id));
  state.typingUsers.set(
    p.user_id,
    setTimeout(() => {
      state.typingUsers.delete(p.user_id);
      renderTyping();
    }, TYPING_SHOW_MS),
  );
  renderTyping();
}

function onComposerInput(): void {
  if (state.currentChatId === null) return;
  const now = Date.now();
  if (now - state.lastTypingSentAt < TYPING_SEND_EVERY_MS) return;
  state.lastTypingSentAt = now;
  client.events.typing(state.currentChatId);
}

// -----------------------------------------------------------------------------------------
// Users
// -----------------------------------------------------------------------------------------
/** A user's name if known; otherwise fetches it and renders again when it arrives. */
function userName(id: Id): string {
  const u = state.users.get(id);
  if (u) return u.name;
  if (u === undefined) {
    state.users.set(id, null);
    client.users
      .get(id)
      .then((user) => {
        state.users.set(id, user);
        queueRender();
      })
      .catch(() => undefined);
  }
  return `user #${id}`;
}

async function searchUsers(): Promise<void> {
  const q = el.userSearch.value.trim();
  try {
    const res = await client.users.list({ q, limit: 20 });
    el.userResults.replaceChildren();
    for (const u of res.users) {
      state.users.set(u.id, u);
      const li = node("li");
      li.dataset.userId = String(u.id);
      li.append(node("span", "", `#${u.id} ${u.name} <${u.email}> `));
      const add = node("button", "small", "+ add") as HTMLButtonElement;
      add.type = "button";
      add.title = "Add this id to the new chat";
      add.addEventListener("click", () => {
        const ids = el.newChatIds.value.split(/[\s,;]+/).filter(Boolean);
        if (!ids.includes(String(u.id))) ids.push(String(u.id));
        el.newChatIds.value = ids.join(", ");
      });
      li.append(add);
      el.userResults.append(li);
    }
    if (res.users.length === 0) el.userResults.append(node("li", "hint", "Nobody found."));
  } catch (err) {
    showError(err);
  }
}

// -----------------------------------------------------------------------------------------
// Rendering
// -----------------------------------------------------------------------------------------
function queueRender(): void {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderAll();
  });
}

function renderAll(): void {
  renderChatList();
  renderHeader();
  renderMessages();
  renderSeenBy();
  renderReplyBar();
  renderTyping();
  updateComposer();
}

function renderChatList(): void {
  const chats = state.chats?.list ?? [];
  el.chatList.replaceChildren(
    ...chats.map((c) => {
      const li = node("li", c.id === state.currentChatId ? "active" : "");
      li.dataset.chatId = String(c.id);
      const b = node("button", c.is_active ? "" : "inactive") as HTMLButtonElement;
      b.type = "button";
      b.dataset.chatId = String(c.id);
      b.title = c.last_message ? c.last_message.text.slice(0, 80) : "no messages yet";
      const name = node("span", "chat-name");
      const partner = c.type === "private" ? c.participant_ids.find((id) => id !== state.me?.id) : undefined;
      if (partner !== undefined) {
        const dot = node("span", "dot");
        const p = state.presence.get(partner);
        if (p) dot.dataset.online = String(p.online);
        dot.title = presenceText(p);
        name.append(dot);
      }
      name.append(chatName(c));
      b.append(name);
      if (c.id !== state.currentChatId) {
        // The @ badge: unread messages that mention the caller (v2).
        if ((c.unread_mentions ?? 0) > 0) {
          const at = node("span", "mention-badge", "@");
          at.title = `${c.unread_mentions} unread mention(s)`;
          b.append(at);
        }
        if (c.unread_count > 0) b.append(node("span", "unread", String(c.unread_count)));
      }
      li.append(b);
      return li;
    }),
  );
  el.chatListEmpty.hidden = chats.length > 0;
  const total = state.chats?.totalUnread ?? 0;
  const mentions = state.chats?.totalMentions ?? 0;
  el.unreadTotal.hidden = total === 0;
  el.unreadTotal.textContent = mentions > 0 ? `${total} unread · @${mentions}` : `${total} unread`;
}

function renderHeader(): void {
  const chat = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
  if (!chat) {
    el.chatTitle.textContent = "Pick a chat";
    delete el.chatTitle.dataset.chatId;
    el.chatMembers.replaceChildren();
    el.loadOlder.hidden = true;
    return;
  }
  el.chatTitle.textContent = chatName(chat) + (chat.is_active ? "" : " (inactive)");
  el.chatTitle.dataset.chatId = String(chat.id);
  el.chatMembers.replaceChildren(`${chat.type} chat #${chat.id} · members: `, ...chat.participant_ids.map(memberChip));
  el.loadOlder.hidden = !state.window?.hasOlder;
}

function renderMessages(): void {
  const entries = state.window?.entries ?? [];
  const me = state.me?.id;
  el.messages.replaceChildren(
    ...entries.map((e) => {
      if (e.kind === "pending") {
        const li = node("li", "message mine pending");
        li.dataset.clientId = e.pending.clientId;
        const meta = node("div", "meta", e.pending.lastError ? "you · retrying…" : "you · sending…");
        li.append(meta, node("div", "text", e.pending.text));
        return li;
      }
      return renderMessage(e.message, me);
    }),
  );
  el.loadOlder.hidden = !state.window?.hasOlder;
}

function renderMessage(m: Message, me: Id | undefined): HTMLElement {
  const mine = m.sender_id === me;
  const li = node("li", "message");
  li.classList.toggle("mine", mine);
  li.classList.toggle("mentions-me", me !== undefined && Boolean(m.mentions?.includes(me)));
  li.classList.toggle("flash", m.id === state.flashId);
  li.dataset.messageId = String(m.id);
  li.dataset.senderId = String(m.sender_id);
  if (m.reply_to != null) li.append(renderQuote(m.chat_id, m.reply_to));
  const meta = node("div", "meta");
  meta.append(node("span", "sender", mine ? "you" : userName(m.sender_id)), " · ");
  const time = node("time", "", formatTime(m.created_at)) as HTMLTimeElement;
  time.dateTime = m.created_at;
  meta.append(time);
  if (m.edited_at) meta.append(node("span", "edited", " (edited)"));
  li.append(meta, node("div", "text", m.text));

  // Reactions: counts (yours highlighted; click to add or take back yours), a picker, reply.
  const bar = node("div", "reactions");
  for (const r of m.reactions ?? []) {
    const b = node("button", "reaction", `${r.emoji} ${r.count}`) as HTMLButtonElement;
    b.type = "button";
    b.dataset.emoji = r.emoji;
    b.classList.toggle("mine", Boolean(m.my_reactions?.includes(r.emoji)));
    b.title = b.classList.contains("mine") ? "Take back your reaction" : "React with this too";
    bar.append(b);
  }
  const add = node("button", "react-add", "☺+") as HTMLButtonElement;
  add.type = "button";
  add.title = "Add a reaction";
  const reply = node("button", "reply-button", "Reply") as HTMLButtonElement;
  reply.type = "button";
  bar.append(add, reply);
  li.append(bar);
  if (state.pickerFor === m.id) {
    const picker = node("div", "picker");
    for (const emoji of PICKER_EMOJI) {
      const b = node("button", "pick", emoji) as HTMLButtonElement;
      b.type = "button";
      b.dataset.emoji = emoji;
      picker.append(b);
    }
    li.append(picker);
  }
  return li;
}

/** The quote above a reply: who wrote the original and its text, or that it is gone. */
function renderQuote(chatId: Id, id: Id): HTMLElement {
  const q = node("blockquote", "quote");
  q.dataset.replyTo = String(id);
  const original = quoteOf(chatId, id);
  if (original === "loading") q.textContent = "…";
  else if (original === null) {
    q.classList.add("gone");
    q.textContent = "deleted message";
  } else {
    q.append(node("span", "quote-sender", original.sender_id === state.me?.id ? "you" : userName(original.sender_id)), " ", original.text);
  }
  return q;
}

/** "Seen by" under the last message: members whose read cursor reached it, not its sender. */
function renderSeenBy(): void {
  const chat = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
  let last: Message | undefined;
  for (const e of state.window?.entries ?? []) if (e.kind === "message") last = e.message;
  const readers = !chat || !last ? [] : chat.participant_ids.filter((id) => id !== last.sender_id && (state.reads.get(id) ?? 0) >= last.id);
  el.seenBy.hidden = readers.length === 0;
  el.seenBy.textContent = readers.length ? `Seen by ${readers.map((id) => (id === state.me?.id ? "you" : userName(id))).join(", ")}` : "";
  if (last) el.seenBy.dataset.messageId = String(last.id);
}

function renderReplyBar(): void {
  const m = state.replyTo;
  el.replyBar.hidden = !m;
  if (!m) return;
  el.replyQuote.textContent = `Replying to ${m.sender_id === state.me?.id ? "yourself" : userName(m.sender_id)}: ${m.text.slice(0, 80)}`;
}

function renderTyping(): void {
  const names = [...state.typingUsers.keys()].map(userName);
  el.typing.textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function updateComposer(): void {
  const chat = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
  const usable = Boolean(chat?.is_active);
  el.messageText.disabled = !usable;
  el.send.disabled = !usable;
  el.messageText.placeholder = !chat ? "Pick a chat first" : chat.is_active ? "Write a message (@name mentions a member)" : "This chat is inactive";
}

function isAtBottom(): boolean {
  return el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 40;
}

function scrollToBottom(): void {
  el.messages.scrollTop = el.messages.scrollHeight;
}

// -----------------------------------------------------------------------------------------
// Wiring
// -----------------------------------------------------------------------------------------
async function authAction(action: "login" | "register"): Promise<void> {
  clearError();
  const email = el.email.value.trim();
  const password = el.password.value;
  if (!email || !password) {
    el.authError.textContent = "Enter an email and a password.";
    el.authError.hidden = false;
    return;
  }
  el.login.disabled = true;
  el.register.disabled = true;
  try {
    if (action === "register") {
      const name = el.name.value.trim() || email.split("@")[0] || email;
      await register(email, password, name);
    } else {
      await logIn(email, password);
    }
  } catch (err) {
    el.authError.textContent = describeError(err);
    el.authError.hidden = false;
  } finally {
    el.login.disabled = false;
    el.register.disabled = false;
  }
}

el.authForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void authAction("login");
});
el.register.addEventListener("click", () => void authAction("register"));
el.logout.addEventListener("click", () => {
  // The tokens are forgotten even if the server cannot be told.
  client.auth.logout().catch(() => undefined);
  signOut();
});
el.refreshChats.addEventListener("click", () => void state.chats?.load().catch(showError));
el.newChatForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void createChat();
});
el.userSearchForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void searchUsers();
});
el.chatList.addEventListener("click", (ev) => {
  const b = (ev.target as HTMLElement).closest<HTMLElement>("button[data-chat-id]");
  if (b) openChat(Number(b.dataset.chatId)).catch(showError);
});
el.loadOlder.addEventListener("click", () => void loadOlder());
el.messages.addEventListener("click", (ev) => {
  const target = (ev.target as HTMLElement).closest<HTMLElement>("button, blockquote");
  const id = Number(target?.closest<HTMLElement>("li[data-message-id]")?.dataset.messageId);
  if (!target || !id) return;
  if (target.matches(".reply-button")) startReply(id);
  else if (target.matches(".reaction, .pick")) void toggleReaction(id, target.dataset.emoji ?? "");
  else if (target.matches(".react-add")) {
    state.pickerFor = state.pickerFor === id ? null : id;
    renderMessages();
  } else if (target.matches(".quote") && state.currentChatId !== null) {
    void jumpTo(state.currentChatId, Number(target.dataset.replyTo));
  }
});
el.replyCancel.addEventListener("click", () => {
  state.replyTo = null;
  renderReplyBar();
});
el.searchForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void searchMessages();
});
el.searchResults.addEventListener("click", (ev) => {
  const b = (ev.target as HTMLElement).closest<HTMLElement>("button[data-message-id]");
  if (b) jumpTo(Number(b.dataset.chatId), Number(b.dataset.messageId)).catch(showError);
});
el.messageForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void sendMessage();
});
el.messageText.addEventListener("input", onComposerInput);

// Resume the session of this tab after a reload.
void client.ready().then(() => {
  if (!client.auth.signedIn) {
    setStatus("idle");
    return;
  }
  startSession().catch((err: unknown) => {
    if (err instanceof RtchatError && err.status === 401) signOut("Please log in again.");
    else showError(err);
  });
});
