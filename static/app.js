// rtchat demo client: plain JavaScript, no framework, no build step.
//
// What it shows: log in or register, list chats, create a chat, read and send messages, and
// receive everything live over the WebSocket /ws/notif. The socket protocol (see /docs):
// the first frame is `ready` {user_id, seq, heartbeat_interval_ms}; durable events carry a
// per-user consecutive `seq`; after a drop the client reconnects with `since=<last seq>` and
// the server replays what was missed; `resync_required` means "refetch over REST".
"use strict";

(function () {
  // ---------------------------------------------------------------------------------------
  // Elements and state
  // ---------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const el = {
    error: $("error"),
    wsStatus: $("ws-status"),
    whoami: $("whoami"),
    logout: $("logout"),
    authPanel: $("auth-panel"),
    authForm: $("auth-form"),
    email: $("email"),
    password: $("password"),
    name: $("name"),
    login: $("login"),
    register: $("register"),
    authError: $("auth-error"),
    appPanel: $("app-panel"),
    chatList: $("chat-list"),
    chatListEmpty: $("chat-list-empty"),
    refreshChats: $("refresh-chats"),
    newChatForm: $("new-chat-form"),
    newChatType: $("new-chat-type"),
    newChatTitle: $("new-chat-title"),
    newChatIds: $("new-chat-ids"),
    createChat: $("create-chat"),
    userSearchForm: $("user-search-form"),
    userSearch: $("user-search"),
    userResults: $("user-results"),
    chatTitle: $("chat-title"),
    chatMembers: $("chat-members"),
    loadOlder: $("load-older"),
    messages: $("messages"),
    typing: $("typing"),
    messageForm: $("message-form"),
    messageText: $("message-text"),
    send: $("send"),
  };

  /** Where the tokens survive a reload of this tab (not shared with other tabs). */
  const STORAGE_KEY = "rtchat.session";
  /** Reconnect backoff: first retry after ~0.5 s, doubling up to 30 s, with jitter. */
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  /** Refresh the access token when it has less than this left before opening a socket. */
  const TOKEN_MARGIN_MS = 30000;
  /** Send a `typing` frame at most this often while the user types. */
  const TYPING_SEND_EVERY_MS = 3000;
  /** How long someone else's `typing` stays on screen without a new one. */
  const TYPING_SHOW_MS = 4000;
  /** Messages per page. */
  const PAGE_SIZE = 50;

  const state = {
    accessToken: null,
    refreshToken: null,
    accessExpiresAt: 0,
    me: null,
    /** chat id -> ChatView */
    chats: new Map(),
    /** user id -> User, or {pending: true} while it is being fetched */
    users: new Map(),
    currentChatId: null,
    /** message id -> Message, for the open chat only */
    messages: new Map(),
    hasOlder: false,
    // socket
    wantSocket: false,
    ws: null,
    /** The last durable `seq` applied; null until the first `ready`. */
    lastSeq: null,
    readySeq: null,
    attempts: 0,
    reconnectTimer: null,
    heartbeatTimer: null,
    lastFrameAt: 0,
    // typing
    lastTypingSentAt: 0,
    typingUsers: new Map(),
    readTimer: null,
    renderQueued: false,
    chatsGeneration: 0,
  };

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.detail) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
      this.errors = (body && body.errors) || [];
      this.retryAfter = retryAfter;
    }
  }

  function describeError(err) {
    if (err instanceof ApiError) {
      const fields = err.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
      let text = fields ? `${err.message} (${fields})` : err.message;
      if (err.code === "rate_limited" && err.retryAfter) text += ` — retry in ${err.retryAfter} s`;
      return text;
    }
    return "The server cannot be reached. Check your connection.";
  }

  let errorTimer = null;
  function showError(err) {
    el.error.textContent = typeof err === "string" ? err : describeError(err);
    el.error.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { el.error.hidden = true; }, 10000);
  }

  function clearError() {
    el.error.hidden = true;
    el.authError.hidden = true;
  }

  /** A client_id for idempotent sends. randomUUID needs a secure context, hence the fallback. */
  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function formatTime(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  // ---------------------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------------------
  /**
   * Calls the REST API. Throws ApiError for an error status, TypeError when the network
   * fails. A 401 is answered by one token refresh and one retry.
   */
  async function api(method, path, body, options) {
    const opts = options || {};
    const auth = opts.auth !== false;
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && state.accessToken) headers.Authorization = `Bearer ${state.accessToken}`;
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401 && auth && !opts.retried && state.refreshToken) {
      const outcome = await refreshTokens();
      if (outcome === "ok") return api(method, path, body, { ...opts, retried: true });
      if (outcome === "rejected") signOut("Your session has ended. Please log in again.");
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { detail: text }; }
    }
    if (!res.ok) throw new ApiError(res.status, data, res.headers.get("Retry-After"));
    return data;
  }

  /** Retries a call that failed on the network (not on an HTTP error). */
  async function withNetworkRetry(call, attempts) {
    for (let i = 1; ; i++) {
      try {
        return await call();
      } catch (err) {
        if (err instanceof ApiError || i >= attempts) throw err;
        await sleep(1000 * i);
      }
    }
  }

  function setTokens(pair) {
    state.accessToken = pair.access_token;
    state.refreshToken = pair.refresh_token;
    state.accessExpiresAt = Date.now() + (Number(pair.expires_in) || 0) * 1000;
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify({
        access_token: state.accessToken,
        refresh_token: state.refreshToken,
        expires_at: state.accessExpiresAt,
      }));
    } catch (_) { /* storage disabled: the session just won't survive a reload */ }
  }

  let refreshing = null;
  /** Rotates the tokens once, however many callers ask at the same time. */
  function refreshTokens() {
    if (!refreshing) {
      refreshing = (async () => {
        try {
          const res = await fetch("/auth/refresh", {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify({ refresh_token: state.refreshToken }),
          });
          if (!res.ok) return res.status === 401 || res.status === 422 ? "rejected" : "offline";
          setTokens(await res.json());
          return "ok";
        } catch (_) {
          return "offline";
        } finally {
          refreshing = null;
        }
      })();
    }
    return refreshing;
  }

  async function ensureFreshToken() {
    if (state.accessExpiresAt - Date.now() > TOKEN_MARGIN_MS) return "ok";
    return refreshTokens();
  }

  // ---------------------------------------------------------------------------------------
  // Session
  // ---------------------------------------------------------------------------------------
  async function logIn(email, password) {
    const pair = await api("POST", "/auth/login", { email, password }, { auth: false });
    setTokens(pair);
    await startSession();
  }

  async function register(email, password, name) {
    await api("POST", "/auth/register", { email, name, password }, { auth: false });
    await logIn(email, password);
  }

  async function startSession() {
    state.me = await api("GET", "/auth/me");
    state.users.set(state.me.id, state.me);
    el.whoami.textContent = `${state.me.name} (#${state.me.id})`;
    el.whoami.dataset.userId = String(state.me.id);
    el.authPanel.hidden = true;
    el.appPanel.hidden = false;
    el.logout.hidden = false;
    el.password.value = "";
    state.wantSocket = true;
    state.lastSeq = null;
    state.attempts = 0;
    openSocket();
    await loadChats();
  }

  function signOut(message) {
    state.wantSocket = false;
    clearTimeout(state.reconnectTimer);
    stopHeartbeat();
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, "logged out");
    try { sessionStorage.removeItem(STORAGE_KEY); } catch (_) { /* ignore */ }
    Object.assign(state, {
      accessToken: null, refreshToken: null, accessExpiresAt: 0, me: null,
      currentChatId: null, lastSeq: null, readySeq: null, attempts: 0, hasOlder: false,
    });
    state.chats.clear();
    state.users.clear();
    state.messages.clear();
    state.typingUsers.clear();
    el.whoami.textContent = "";
    delete el.whoami.dataset.userId;
    el.logout.hidden = true;
    el.appPanel.hidden = true;
    el.authPanel.hidden = false;
    setStatus("offline", "offline");
    renderAll();
    if (message) {
      el.authError.textContent = message;
      el.authError.hidden = false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // WebSocket
  // ---------------------------------------------------------------------------------------
  function setStatus(kind, text) {
    el.wsStatus.dataset.state = kind;
    el.wsStatus.textContent = text;
  }

  async function openSocket() {
    clearTimeout(state.reconnectTimer);
    if (!state.wantSocket || state.ws) return;
    const fresh = await ensureFreshToken();
    if (!state.wantSocket || state.ws) return;
    if (fresh === "rejected") {
      signOut("Your session has ended. Please log in again.");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}/ws/notif?token=${encodeURIComponent(state.accessToken)}`;
    if (state.lastSeq !== null) url += `&since=${state.lastSeq}`;
    setStatus(state.attempts === 0 ? "connecting" : "reconnecting", "connecting…");

    const ws = new WebSocket(url);
    let gotReady = false;
    state.ws = ws;
    ws.onopen = () => { state.lastFrameAt = Date.now(); };
    ws.onmessage = (ev) => {
      if (ws !== state.ws) return;
      state.lastFrameAt = Date.now();
      let frame;
      try { frame = JSON.parse(ev.data); } catch (_) { return; }
      if (frame && frame.type === "ready") gotReady = true;
      handleFrame(frame);
    };
    ws.onerror = () => { /* a close event always follows */ };
    ws.onclose = (ev) => {
      if (ws !== state.ws) return;
      state.ws = null;
      stopHeartbeat();
      onSocketClosed(ev.code, gotReady);
    };
  }

  function onSocketClosed(code, gotReady) {
    if (!state.wantSocket) {
      setStatus("offline", "offline");
      return;
    }
    if (code === 4001) {
      // The access token expired or the session was revoked: refresh, then resume.
      refreshTokens().then((outcome) => {
        if (outcome === "rejected") signOut("Your session has ended. Please log in again.");
        else scheduleReconnect(state.attempts < 2 ? 0 : undefined);
      });
      return;
    }
    if (!gotReady) {
      // The upgrade may have been refused (401 is invisible to a browser WebSocket): a REST
      // call finds out, refreshing the token or signing out as needed.
      api("GET", "/auth/me").catch(() => {});
    }
    scheduleReconnect();
  }

  function scheduleReconnect(delayMs) {
    clearTimeout(state.reconnectTimer);
    state.attempts += 1;
    let delay = delayMs;
    if (delay === undefined) {
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(state.attempts - 1, 10));
      delay = ceiling / 2 + Math.random() * (ceiling / 2);
    }
    setStatus("reconnecting", `reconnecting in ${Math.max(1, Math.round(delay / 1000))} s`);
    state.reconnectTimer = setTimeout(openSocket, delay);
  }

  function startHeartbeat(intervalMs) {
    stopHeartbeat();
    const every = Math.max(1000, Number(intervalMs) || 30000);
    state.heartbeatTimer = setInterval(() => {
      const ws = state.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - state.lastFrameAt > every * 2.5) {
        // Nothing heard (not even a pong) for too long: the connection is dead. Drop it
        // without waiting for a closing handshake that will never come.
        state.ws = null;
        stopHeartbeat();
        ws.close(4000, "heartbeat timeout");
        onSocketClosed(1006, true);
        return;
      }
      ws.send(JSON.stringify({ type: "ping" }));
    }, every);
  }

  function stopHeartbeat() {
    clearInterval(state.heartbeatTimer);
    state.heartbeatTimer = null;
  }

  function sendFrame(frame) {
    const ws = state.ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function handleFrame(frame) {
    if (!frame || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "ready":
        onReady(frame.payload || {});
        return;
      case "resync_required":
        // `since` is too old: what we hold may be stale. Refetch, and continue from the
        // `seq` the server announced in `ready`.
        state.lastSeq = state.readySeq;
        resync();
        return;
      case "typing":
        onTyping(frame.payload || {});
        return;
      case "pong":
        return;
      case "error":
        console.warn("rtchat socket error frame", frame.payload);
        return;
      default:
        break;
    }
    if (typeof frame.seq !== "number") return; // an ephemeral type this page does not know
    if (state.lastSeq !== null && frame.seq <= state.lastSeq) return; // already applied
    if (state.lastSeq !== null && frame.seq > state.lastSeq + 1) {
      // A gap means something was missed: refetch rather than guess.
      state.lastSeq = frame.seq;
      resync();
      return;
    }
    state.lastSeq = frame.seq;
    applyEvent(frame);
  }

  function onReady(payload) {
    state.attempts = 0;
    state.readySeq = typeof payload.seq === "number" ? payload.seq : 0;
    startHeartbeat(payload.heartbeat_interval_ms);
    setStatus("open", "live");
    if (state.lastSeq === null) {
      // First connection of this session: REST gives the state, the socket the changes
      // after `ready.seq`. Refetch so nothing between the two is lost.
      state.lastSeq = state.readySeq;
      resync();
    }
  }

  function applyEvent(frame) {
    const p = frame.payload || {};
    switch (frame.type) {
      case "create_chat":
      case "update_chat":
        upsertChat(p);
        break;
      case "delete_chat":
        removeChat(p.id);
        break;
      case "new_message":
        onMessage(p);
        break;
      case "update_message":
        onMessageEdited(p);
        break;
      case "delete_message":
        onMessageDeleted(p);
        break;
      case "read":
        onRead(p);
        break;
      default:
        break; // a durable type this page does not know: its seq still counts
    }
  }

  // ---------------------------------------------------------------------------------------
  // Chats
  // ---------------------------------------------------------------------------------------
  async function loadChats() {
    const generation = ++state.chatsGeneration;
    const all = [];
    let before = null;
    for (let page = 0; page < 20; page++) {
      const q = new URLSearchParams({ limit: "100" });
      if (before !== null) q.set("before", String(before));
      const res = await api("GET", `/chats?${q}`);
      all.push(...res.chats);
      if (!res.has_more || res.chats.length === 0) break;
      before = res.chats[res.chats.length - 1].id;
    }
    if (generation !== state.chatsGeneration) return; // a newer load won
    state.chats = new Map(all.map((c) => [c.id, c]));
    if (state.currentChatId !== null && !state.chats.has(state.currentChatId)) closeChat();
    renderAll();
  }

  async function refetchChat(chatId) {
    try {
      upsertChat(await api("GET", `/chats/${chatId}`));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) removeChat(chatId);
    }
  }

  /** Refetches everything after a gap or a resync_required. */
  function resync() {
    loadChats().catch(showError);
    if (state.currentChatId !== null) loadMessages(state.currentChatId).catch(showError);
  }

  function upsertChat(chat) {
    if (!chat || typeof chat.id !== "number") return;
    const old = state.chats.get(chat.id);
    const merged = Object.assign(
      { last_message: null, unread_count: 0, last_read_message_id: null },
      old,
      chat,
    );
    state.chats.set(chat.id, merged);
    queueRender();
  }

  function removeChat(chatId) {
    state.chats.delete(chatId);
    if (state.currentChatId === chatId) closeChat();
    queueRender();
  }

  function chatActivity(c) {
    const t = Date.parse((c.last_message && c.last_message.created_at) || c.created_at);
    return Number.isNaN(t) ? 0 : t;
  }

  function chatName(c) {
    if (c.title) return c.title;
    if (c.type === "private" && state.me) {
      const other = (c.participant_ids || []).find((id) => id !== state.me.id);
      if (other !== undefined) return userName(other);
    }
    return `${c.type === "group" ? "Group" : "Chat"} #${c.id}`;
  }

  async function createChat() {
    const raw = el.newChatIds.value.split(/[\s,;]+/).filter(Boolean);
    const ids = raw.map(Number);
    if (ids.some((n) => !Number.isInteger(n) || n <= 0)) {
      showError("User ids must be positive whole numbers, separated by commas.");
      return;
    }
    const type = el.newChatType.value;
    const title = el.newChatTitle.value.trim();
    const body = { type, participant_ids: ids };
    if (title) body.title = title;
    el.createChat.disabled = true;
    try {
      const chat = await api("POST", "/chats", body);
      clearError();
      el.newChatIds.value = "";
      el.newChatTitle.value = "";
      upsertChat(chat);
      await openChat(chat.id);
    } catch (err) {
      showError(err);
    } finally {
      el.createChat.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Messages
  // ---------------------------------------------------------------------------------------
  async function openChat(chatId) {
    state.currentChatId = chatId;
    state.messages = new Map();
    state.hasOlder = false;
    state.typingUsers.clear();
    renderAll();
    await loadMessages(chatId);
    el.messageText.focus();
  }

  function closeChat() {
    state.currentChatId = null;
    state.messages = new Map();
    state.hasOlder = false;
    state.typingUsers.clear();
    queueRender();
  }

  async function loadMessages(chatId) {
    const res = await api("GET", `/chats/${chatId}/messages?limit=${PAGE_SIZE}`);
    if (state.currentChatId !== chatId) return;
    state.messages = new Map(res.messages.map((m) => [m.id, m]));
    state.hasOlder = res.has_more;
    renderAll();
    scrollToBottom();
    scheduleMarkRead();
  }

  async function loadOlder() {
    const chatId = state.currentChatId;
    if (chatId === null || state.messages.size === 0) return;
    const first = Math.min(...state.messages.keys());
    try {
      const res = await api("GET", `/chats/${chatId}/messages?limit=${PAGE_SIZE}&before=${first}`);
      if (state.currentChatId !== chatId) return;
      const oldHeight = el.messages.scrollHeight;
      for (const m of res.messages) state.messages.set(m.id, m);
      state.hasOlder = res.has_more;
      renderMessages();
      el.messages.scrollTop += el.messages.scrollHeight - oldHeight;
    } catch (err) {
      showError(err);
    }
  }

  /** A message we learned about: from the socket, or from our own send. Idempotent. */
  function onMessage(m) {
    if (!m || typeof m.id !== "number") return;
    const chat = state.chats.get(m.chat_id);
    if (!chat) {
      refetchChat(m.chat_id);
    } else if (!chat.last_message || m.id > chat.last_message.id) {
      chat.last_message = m;
      const mine = state.me && m.sender_id === state.me.id;
      if (!mine && m.chat_id !== state.currentChatId) chat.unread_count = (chat.unread_count || 0) + 1;
    }
    if (m.chat_id === state.currentChatId) {
      const atBottom = isAtBottom();
      state.messages.set(m.id, m);
      state.typingUsers.delete(m.sender_id);
      renderMessages();
      renderTyping();
      if (atBottom || (state.me && m.sender_id === state.me.id)) scrollToBottom();
      scheduleMarkRead();
    }
    queueRender();
  }

  function onMessageEdited(m) {
    if (!m || typeof m.id !== "number") return;
    const chat = state.chats.get(m.chat_id);
    if (chat && chat.last_message && chat.last_message.id === m.id) chat.last_message = m;
    if (m.chat_id === state.currentChatId && state.messages.has(m.id)) state.messages.set(m.id, m);
    queueRender();
  }

  function onMessageDeleted(p) {
    if (p.chat_id === state.currentChatId) state.messages.delete(p.id);
    const chat = state.chats.get(p.chat_id);
    if (chat && chat.last_message && chat.last_message.id === p.id) refetchChat(p.chat_id);
    queueRender();
  }

  function onRead(p) {
    if (!state.me || p.user_id !== state.me.id) return; // others' receipts are not shown
    const chat = state.chats.get(p.chat_id);
    if (!chat) return;
    if (chat.last_read_message_id === null || p.message_id > chat.last_read_message_id) {
      // Read on another device: the server knows the exact unread count.
      refetchChat(p.chat_id);
    }
  }

  async function sendMessage() {
    const chatId = state.currentChatId;
    const text = el.messageText.value;
    if (chatId === null || text.trim() === "") return;
    // One client_id per message, reused by the retries: the server answers a repeat with
    // the original message instead of storing it twice.
    const clientId = newClientId();
    el.send.disabled = true;
    try {
      const m = await withNetworkRetry(
        () => api("POST", `/chats/${chatId}/messages`, { text, client_id: clientId }),
        3,
      );
      clearError();
      if (el.messageText.value === text) el.messageText.value = "";
      onMessage(m);
    } catch (err) {
      showError(err);
    } finally {
      updateComposer();
      el.messageText.focus();
    }
  }

  function scheduleMarkRead() {
    clearTimeout(state.readTimer);
    state.readTimer = setTimeout(markRead, 300);
  }

  async function markRead() {
    const chatId = state.currentChatId;
    const chat = state.chats.get(chatId);
    if (!chat || state.messages.size === 0) return;
    const last = Math.max(...state.messages.keys());
    // Only messages from others make a read receipt worth sending.
    let lastFromOthers = 0;
    for (const m of state.messages.values()) {
      if (m.sender_id !== state.me.id && m.id > lastFromOthers) lastFromOthers = m.id;
    }
    if (lastFromOthers === 0
      || (chat.last_read_message_id !== null && chat.last_read_message_id >= lastFromOthers)) {
      if (chat.unread_count) { chat.unread_count = 0; queueRender(); }
      return;
    }
    try {
      await api("POST", `/chats/${chatId}/read`, { message_id: last });
      chat.last_read_message_id = last;
      chat.unread_count = 0;
      queueRender();
    } catch (_) {
      // Not worth bothering the user: the next message or refresh marks it again.
    }
  }

  // ---------------------------------------------------------------------------------------
  // Typing
  // ---------------------------------------------------------------------------------------
  function onTyping(p) {
    if (p.chat_id !== state.currentChatId || !state.me || p.user_id === state.me.id) return;
    clearTimeout(state.typingUsers.get(p.user_id));
    state.typingUsers.set(p.user_id, setTimeout(() => {
      state.typingUsers.delete(p.user_id);
      renderTyping();
    }, TYPING_SHOW_MS));
    renderTyping();
  }

  function onComposerInput() {
    if (state.currentChatId === null) return;
    const now = Date.now();
    if (now - state.lastTypingSentAt < TYPING_SEND_EVERY_MS) return;
    state.lastTypingSentAt = now;
    sendFrame({ type: "typing", payload: { chat_id: state.currentChatId } });
  }

  // ---------------------------------------------------------------------------------------
  // Users
  // ---------------------------------------------------------------------------------------
  /** A user's name if known; otherwise fetches it and renders again when it arrives. */
  function userName(id) {
    const u = state.users.get(id);
    if (u && u.name) return u.name;
    if (!u) {
      state.users.set(id, { pending: true });
      api("GET", `/users/${id}`)
        .then((user) => { state.users.set(id, user); queueRender(); })
        .catch(() => { state.users.set(id, { name: `user #${id}` }); });
    }
    return `user #${id}`;
  }

  async function searchUsers() {
    const q = el.userSearch.value.trim();
    try {
      const res = await api("GET", `/users?${new URLSearchParams({ q, limit: "20" })}`);
      el.userResults.replaceChildren();
      for (const u of res.users) {
        state.users.set(u.id, u);
        const li = node("li");
        li.dataset.userId = String(u.id);
        li.append(node("span", "", `#${u.id} ${u.name} <${u.email}> `));
        const add = node("button", "small", "+ add");
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

  // ---------------------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------------------
  function queueRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => {
      state.renderQueued = false;
      renderAll();
    });
  }

  function renderAll() {
    renderChatList();
    renderHeader();
    renderMessages();
    renderTyping();
    updateComposer();
  }

  function renderChatList() {
    const chats = [...state.chats.values()].sort(
      (a, b) => chatActivity(b) - chatActivity(a) || b.id - a.id,
    );
    el.chatList.replaceChildren(...chats.map((c) => {
      const li = node("li", c.id === state.currentChatId ? "active" : "");
      li.dataset.chatId = String(c.id);
      const b = node("button", c.is_active ? "" : "inactive");
      b.type = "button";
      b.dataset.chatId = String(c.id);
      b.title = c.last_message ? c.last_message.text.slice(0, 80) : "no messages yet";
      b.append(node("span", "chat-name", chatName(c)));
      if (c.unread_count > 0) b.append(node("span", "unread", String(c.unread_count)));
      li.append(b);
      return li;
    }));
    el.chatListEmpty.hidden = chats.length > 0;
  }

  function renderHeader() {
    const chat = state.chats.get(state.currentChatId);
    if (!chat) {
      el.chatTitle.textContent = "Pick a chat";
      delete el.chatTitle.dataset.chatId;
      el.chatMembers.textContent = "";
      el.loadOlder.hidden = true;
      return;
    }
    el.chatTitle.textContent = chatName(chat) + (chat.is_active ? "" : " (inactive)");
    el.chatTitle.dataset.chatId = String(chat.id);
    el.chatMembers.textContent = `${chat.type} chat #${chat.id} · members: ` +
      chat.participant_ids.map((id) => `${userName(id)} (#${id})`).join(", ");
    el.loadOlder.hidden = !state.hasOlder;
  }

  function renderMessages() {
    const sorted = [...state.messages.values()].sort((a, b) => a.id - b.id);
    el.messages.replaceChildren(...sorted.map((m) => {
      const mine = state.me && m.sender_id === state.me.id;
      const li = node("li", mine ? "message mine" : "message");
      li.dataset.messageId = String(m.id);
      li.dataset.senderId = String(m.sender_id);
      const meta = node("div", "meta");
      meta.append(node("span", "sender", mine ? "you" : userName(m.sender_id)), " · ");
      const time = node("time", "", formatTime(m.created_at));
      time.dateTime = m.created_at;
      meta.append(time);
      if (m.edited_at) meta.append(node("span", "edited", " (edited)"));
      li.append(meta, node("div", "text", m.text));
      return li;
    }));
    el.loadOlder.hidden = !state.hasOlder || state.currentChatId === null;
  }

  function renderTyping() {
    const names = [...state.typingUsers.keys()].map(userName);
    el.typing.textContent = names.length === 0 ? ""
      : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
  }

  function updateComposer() {
    const chat = state.chats.get(state.currentChatId);
    const usable = Boolean(chat && chat.is_active);
    el.messageText.disabled = !usable;
    el.send.disabled = !usable;
    el.messageText.placeholder = !chat ? "Pick a chat first"
      : chat.is_active ? "Write a message" : "This chat is inactive";
  }

  function isAtBottom() {
    return el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 40;
  }

  function scrollToBottom() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }

  // ---------------------------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------------------------
  async function authAction(action) {
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

  el.authForm.addEventListener("submit", (ev) => { ev.preventDefault(); authAction("login"); });
  el.register.addEventListener("click", () => authAction("register"));
  el.logout.addEventListener("click", async () => {
    try { await api("POST", "/auth/logout", {}); } catch (_) { /* signing out anyway */ }
    signOut();
  });
  el.refreshChats.addEventListener("click", () => loadChats().catch(showError));
  el.newChatForm.addEventListener("submit", (ev) => { ev.preventDefault(); createChat(); });
  el.userSearchForm.addEventListener("submit", (ev) => { ev.preventDefault(); searchUsers(); });
  el.chatList.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-chat-id]");
    if (b) openChat(Number(b.dataset.chatId)).catch(showError);
  });
  el.loadOlder.addEventListener("click", loadOlder);
  el.messageForm.addEventListener("submit", (ev) => { ev.preventDefault(); sendMessage(); });
  el.messageText.addEventListener("input", onComposerInput);
  // Come back to life quickly when the network returns instead of waiting out the backoff.
  window.addEventListener("online", () => {
    if (state.wantSocket && !state.ws) scheduleReconnect(0);
  });

  // Resume the session of this tab after a reload.
  (function resume() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null"); } catch (_) { saved = null; }
    if (!saved || !saved.access_token) {
      setStatus("offline", "offline");
      return;
    }
    state.accessToken = saved.access_token;
    state.refreshToken = saved.refresh_token;
    state.accessExpiresAt = Number(saved.expires_at) || 0;
    startSession().catch((err) => {
      if (err instanceof ApiError) signOut("Please log in again.");
      else showError(err);
    });
  })();
})();
