// rtchat demo page, on @rtchat/client: log in or register, list chats, create a chat, read and
// send messages, and see everything live. The client does the hard parts (the socket, resume
// with `since`, token refresh, retried sends, unread counts); this file is the page around it.
// Bundled by scripts/build-demo.mjs into ../../static/app.js, which the server compiles in.
import {
  RtchatClient,
  RtchatError,
  WebStorageCursorStore,
  WebStorageTokenStore,
  type ChatListState,
  type ChatView,
  type Id,
  type MessageWindow,
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
  chatTitle: $("chat-title"),
  chatMembers: $("chat-members"),
  loadOlder: $<HTMLButtonElement>("load-older"),
  messages: $("messages"),
  typing: $("typing"),
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
  state.stream = client.events.subscribe(() => queueRender(), {
    onState: setStatus,
    onTyping: onTyping,
  });
  const chats = client.chatList();
  state.chats = chats;
  chats.changes.add(() => {
    if (state.currentChatId !== null && !chats.get(state.currentChatId)) closeChat();
    queueRender();
  });
  await chats.start();
  renderAll();
}

/** Back to the login form; `message` says why. */
function signOut(message?: string): void {
  state.stream?.unsubscribe();
  state.chats?.stop();
  state.window?.stop();
  Object.assign(state, { me: null, chats: null, window: null, stream: null, currentChatId: null });
  state.users.clear();
  state.typingUsers.clear();
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
  state.window?.stop();
  state.window = null;
  state.currentChatId = null;
  state.typingUsers.clear();
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
  // Shown as pending at once; the client retries with the same client_id until stored.
  el.messageText.value = "";
  try {
    await win.send(text);
    clearError();
    scrollToBottom();
  } catch (err) {
    if (el.messageText.value === "") el.messageText.value = text;
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
      b.append(node("span", "chat-name", chatName(c)));
      if (c.unread_count > 0 && c.id !== state.currentChatId) b.append(node("span", "unread", String(c.unread_count)));
      li.append(b);
      return li;
    }),
  );
  el.chatListEmpty.hidden = chats.length > 0;
}

function renderHeader(): void {
  const chat = state.currentChatId === null ? undefined : state.chats?.get(state.currentChatId);
  if (!chat) {
    el.chatTitle.textContent = "Pick a chat";
    delete el.chatTitle.dataset.chatId;
    el.chatMembers.textContent = "";
    el.loadOlder.hidden = true;
    return;
  }
  el.chatTitle.textContent = chatName(chat) + (chat.is_active ? "" : " (inactive)");
  el.chatTitle.dataset.chatId = String(chat.id);
  el.chatMembers.textContent =
    `${chat.type} chat #${chat.id} · members: ` + chat.participant_ids.map((id) => `${userName(id)} (#${id})`).join(", ");
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
      const m = e.message;
      const mine = m.sender_id === me;
      const li = node("li", mine ? "message mine" : "message");
      li.dataset.messageId = String(m.id);
      li.dataset.senderId = String(m.sender_id);
      const meta = node("div", "meta");
      meta.append(node("span", "sender", mine ? "you" : userName(m.sender_id)), " · ");
      const time = node("time", "", formatTime(m.created_at)) as HTMLTimeElement;
      time.dateTime = m.created_at;
      meta.append(time);
      if (m.edited_at) meta.append(node("span", "edited", " (edited)"));
      li.append(meta, node("div", "text", m.text));
      return li;
    }),
  );
  el.loadOlder.hidden = !state.window?.hasOlder;
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
  el.messageText.placeholder = !chat ? "Pick a chat first" : chat.is_active ? "Write a message" : "This chat is inactive";
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
