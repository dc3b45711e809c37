// Generated from clients/typescript/demo/app.ts and @rtchat/client by
// clients/typescript/scripts/build-demo.mjs: edit those, then `npm run demo`.
"use strict";
(() => {
  var __defProp = Object.defineProperty;
  var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
  var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

  // src/errors.ts
  var NETWORK_ERROR_STATUS = 0;
  var RtchatError = class extends Error {
    constructor(init) {
      super(`${init.status ? `${init.status} ` : ""}${init.code}: ${init.detail}`, { cause: init.cause });
      /** The HTTP status, or 0 when the request got no answer. */
      __publicField(this, "status");
      /** rtchat's stable snake_case code (`not_found`, `rate_limited`, ...); `network_error`
       * when there was no answer, `aborted` when the caller's signal fired, `http_<status>` when
       * the body was not rtchat's envelope (a proxy's page). */
      __publicField(this, "code");
      /** The server's message for humans. */
      __publicField(this, "detail");
      /** The failing fields of a `422 validation_error`, else empty. */
      __publicField(this, "errors");
      /** Seconds to wait from `Retry-After` (429, 503), if the server sent one. */
      __publicField(this, "retryAfter");
      this.name = "RtchatError";
      this.status = init.status;
      this.code = init.code;
      this.detail = init.detail;
      this.errors = init.errors ?? [];
      this.retryAfter = init.retryAfter;
    }
    /** True for failures where the request may not have reached the server or the server
     * failed transiently: no answer, 5xx (`unavailable`, `internal_error`, a proxy's 502). */
    get isTransient() {
      return this.status === NETWORK_ERROR_STATUS || this.status >= 500;
    }
  };
  function errorFromResponse(status, statusText, headers, text) {
    const retryAfterHeader = headers.get("retry-after")?.trim();
    const retryAfter = retryAfterHeader !== void 0 && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : void 0;
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = void 0;
    }
    if (isEnvelope(body)) {
      return new RtchatError({
        status,
        code: body.code,
        detail: body.detail,
        errors: Array.isArray(body.errors) ? body.errors : [],
        retryAfter
      });
    }
    return new RtchatError({
      status,
      code: `http_${status}`,
      detail: statusText || "the answer was not an rtchat error",
      retryAfter
    });
  }
  function isEnvelope(body) {
    return typeof body === "object" && body !== null && typeof body.code === "string" && typeof body.detail === "string";
  }
  function networkError(cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new RtchatError({ status: NETWORK_ERROR_STATUS, code: "network_error", detail, cause });
  }
  function abortedError(cause) {
    return new RtchatError({ status: NETWORK_ERROR_STATUS, code: "aborted", detail: "the request was aborted", cause });
  }

  // src/util.ts
  function backoffDelay(backoff, attempt, random = Math.random) {
    const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
    return Math.floor(random() * ceiling);
  }
  function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const reason = () => signal?.reason instanceof Error ? signal.reason : new Error("aborted");
      if (signal?.aborted) {
        reject(reason());
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(reason());
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
  function randomId() {
    const c = globalThis.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    const bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] ?? 0) & 15 | 64;
    bytes[8] = (bytes[8] ?? 0) & 63 | 128;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  function jwtClaims(token) {
    const part = token.split(".")[1];
    if (!part) return void 0;
    try {
      const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
      const padded = base64 + "=".repeat((4 - base64.length % 4) % 4);
      const claims = JSON.parse(atob(padded));
      return typeof claims === "object" && claims !== null ? claims : void 0;
    } catch {
      return void 0;
    }
  }
  var Listeners = class {
    constructor() {
      __publicField(this, "set", /* @__PURE__ */ new Set());
    }
    add(listener) {
      this.set.add(listener);
      return () => this.set.delete(listener);
    }
    emit(...args) {
      for (const listener of [...this.set]) listener(...args);
    }
    get size() {
      return this.set.size;
    }
  };

  // src/http.ts
  var Http = class {
    constructor(options, session) {
      __publicField(this, "options", options);
      __publicField(this, "session", session);
    }
    /** `path` with its `{name}` segments filled in, percent-encoded. */
    static fill(template, params) {
      return template.replace(/\{(\w+)\}/g, (_, name) => {
        const value = params[name];
        if (value === void 0) throw new TypeError(`missing path parameter ${name}`);
        return encodeURIComponent(String(value));
      });
    }
    url(path, query) {
      const url = new URL(path.replace(/^\//, ""), this.options.baseUrl.replace(/\/*$/, "/"));
      for (const [key, value] of Object.entries(query ?? {})) {
        if (value === void 0 || value === null) continue;
        url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
      }
      return url.toString();
    }
    async request(method, path, o = {}) {
      const auth = o.auth ?? true;
      let refreshed = false;
      let rateLimited = 0;
      for (; ; ) {
        const token = auth ? await this.session.accessToken() : null;
        if (auth && !token) {
          throw new RtchatError({ status: 401, code: "unauthorized", detail: "not signed in" });
        }
        const { response, text } = await this.exchange(method, path, o, token);
        if (response.ok) return this.parse(response, text, o.accept ?? "json");
        const err = errorFromResponse(response.status, response.statusText, response.headers, text);
        if (response.status === 401 && auth && !refreshed) {
          refreshed = true;
          if (await this.session.refresh(token ?? void 0)) continue;
        } else if (
          // A 429 `rate_limited` means the server did nothing, so retrying is safe for every
          // method; only short waits are taken, a login lockout of minutes is the caller's call.
          response.status === 429 && err.code === "rate_limited" && rateLimited < this.options.rateLimitRetries && (err.retryAfter ?? 1) <= this.options.maxRetryAfterSecs
        ) {
          rateLimited++;
          await sleep((err.retryAfter ?? 1) * 1e3, o.signal).catch((reason) => {
            throw abortedError(reason);
          });
          continue;
        }
        throw err;
      }
    }
    /** One fetch and its body, bounded by the timeout and the caller's signal. */
    async exchange(method, path, o, token) {
      const headers = { accept: "application/json" };
      if (token) headers.authorization = `Bearer ${token}`;
      let body;
      if (o.body !== void 0) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(o.body);
      }
      if (o.signal?.aborted) throw abortedError(o.signal.reason);
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error(`no answer within ${this.options.timeoutMs} ms`)),
        this.options.timeoutMs
      );
      const onAbort = () => controller.abort(o.signal?.reason);
      o.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const response = await this.options.fetch(this.url(path, o.query), {
          method,
          headers,
          body: body ?? null,
          signal: controller.signal
        });
        const text = await response.text();
        return { response, text };
      } catch (cause) {
        if (o.signal?.aborted) throw abortedError(cause);
        throw networkError(controller.signal.aborted ? controller.signal.reason : cause);
      } finally {
        clearTimeout(timer);
        o.signal?.removeEventListener("abort", onAbort);
      }
    }
    parse(response, text, accept) {
      if (accept === "text") return text;
      if (response.status === 204 || text === "") return void 0;
      try {
        return JSON.parse(text);
      } catch (cause) {
        throw new RtchatError({
          status: response.status,
          code: "invalid_response",
          detail: "the answer was not JSON",
          cause
        });
      }
    }
  };

  // src/api.ts
  var ENDPOINTS = {
    register_user: { method: "POST", path: "/auth/register" },
    login_user: { method: "POST", path: "/auth/login" },
    refresh_tokens: { method: "POST", path: "/auth/refresh" },
    logout_user: { method: "POST", path: "/auth/logout" },
    get_current_user: { method: "GET", path: "/auth/me" },
    list_users: { method: "GET", path: "/users" },
    get_user: { method: "GET", path: "/users/{user_id}" },
    list_chats: { method: "GET", path: "/chats" },
    create_chat: { method: "POST", path: "/chats" },
    get_chat: { method: "GET", path: "/chats/{chat_id}" },
    delete_chat: { method: "DELETE", path: "/chats/{chat_id}" },
    update_chat: { method: "PATCH", path: "/chats/{chat_id}" },
    add_chat_members: { method: "POST", path: "/chats/{chat_id}/members" },
    remove_chat_member: { method: "DELETE", path: "/chats/{chat_id}/members/{user_id}" },
    mark_chat_read: { method: "POST", path: "/chats/{chat_id}/read" },
    list_messages: { method: "GET", path: "/chats/{chat_id}/messages" },
    send_message: { method: "POST", path: "/chats/{chat_id}/messages" },
    delete_message: { method: "DELETE", path: "/chats/{chat_id}/messages/{message_id}" },
    edit_message: { method: "PATCH", path: "/chats/{chat_id}/messages/{message_id}" },
    add_reaction: { method: "PUT", path: "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}" },
    remove_reaction: { method: "DELETE", path: "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}" },
    list_events: { method: "GET", path: "/events" },
    list_chat_reads: { method: "GET", path: "/chats/{chat_id}/reads" },
    get_unread_totals: { method: "GET", path: "/unread" },
    search_messages: { method: "GET", path: "/search/messages" },
    get_presence: { method: "GET", path: "/presence" },
    // The stream (client.events.subscribe).
    connect_notifications: { method: "GET", path: "/ws/notif" },
    get_health: { method: "GET", path: "/healthz" },
    get_readiness: { method: "GET", path: "/readyz" },
    get_metrics: { method: "GET", path: "/metrics" },
    get_openapi_spec: { method: "GET", path: "/openapi.yaml" },
    // Pages and assets for browsers (Swagger UI, the demo): listed, not wrapped.
    get_docs: { method: "GET", path: "/docs" },
    get_docs_asset: { method: "GET", path: "/docs/{file}" },
    get_index: { method: "GET", path: "/" },
    get_static_asset: { method: "GET", path: "/static/{file}" }
  };
  var Caller = class {
    constructor(http) {
      __publicField(this, "http", http);
    }
    call(endpoint, params, init = {}) {
      return this.http.request(endpoint.method, Http.fill(endpoint.path, params), init);
    }
  };
  var AuthApi = class extends Caller {
    constructor(http, session) {
      super(http);
      __publicField(this, "session", session);
    }
    /** `POST /auth/register`: creates the account (does not log in). */
    register(body, o = {}) {
      return this.call(ENDPOINTS.register_user, {}, { body, auth: false, ...o });
    }
    /** `POST /auth/login`: logs in and keeps the tokens (refreshed from now on). */
    async login(email, password, o = {}) {
      const pair = await this.call(ENDPOINTS.login_user, {}, { body: { email, password }, auth: false, ...o });
      await this.session.setPair(pair);
      return pair;
    }
    /** `POST /auth/refresh` now (it also happens by itself before expiry). Null when the
     * session ended. */
    refresh() {
      return this.session.refresh();
    }
    /** `POST /auth/logout`: ends this session (`all`: every session of the user) and forgets
     * the tokens; the stream stops. The tokens are forgotten even if the server is unreachable. */
    async logout(options = {}) {
      const { all, ...o } = options;
      try {
        if (this.session.current) {
          await this.call(ENDPOINTS.logout_user, {}, { body: all ? { all: true } : {}, ...o });
        }
      } finally {
        await this.session.clear("logout");
      }
    }
    /** `GET /auth/me` */
    me(o = {}) {
      return this.call(ENDPOINTS.get_current_user, {}, o);
    }
    /** The signed-in user's id (from the token), if any. */
    get userId() {
      return this.session.userId;
    }
    get signedIn() {
      return this.session.current !== null;
    }
  };
  var UsersApi = class extends Caller {
    /** `GET /users?q=&limit=` */
    list(query = {}, o = {}) {
      return this.call(ENDPOINTS.list_users, {}, { query, ...o });
    }
    /** `GET /users/{id}` */
    get(userId, o = {}) {
      return this.call(ENDPOINTS.get_user, { user_id: userId }, o);
    }
  };
  var ChatsApi = class extends Caller {
    constructor(http, session) {
      super(http);
      __publicField(this, "session", session);
    }
    /** `POST /chats` (an existing private pair answers that chat). */
    create(body, o = {}) {
      return this.call(ENDPOINTS.create_chat, {}, { body, ...o });
    }
    /** `GET /chats?limit=&before=`: one page, most recent activity first. */
    list(query = {}, o = {}) {
      return this.call(ENDPOINTS.list_chats, {}, { query, ...o });
    }
    /** Every chat of the caller, page by page. */
    async listAll(o = {}) {
      const all = [];
      let before;
      for (; ; ) {
        const page = await this.list(before === void 0 ? { limit: 100 } : { limit: 100, before }, o);
        all.push(...page.chats);
        const last = page.chats[page.chats.length - 1];
        if (!page.has_more || !last) return all;
        before = last.id;
      }
    }
    /** `GET /chats/{id}` */
    get(chatId, o = {}) {
      return this.call(ENDPOINTS.get_chat, { chat_id: chatId }, o);
    }
    /** `PATCH /chats/{id}` (creator) */
    update(chatId, body, o = {}) {
      return this.call(ENDPOINTS.update_chat, { chat_id: chatId }, { body, ...o });
    }
    /** `DELETE /chats/{id}` (creator) */
    delete(chatId, o = {}) {
      return this.call(ENDPOINTS.delete_chat, { chat_id: chatId }, o);
    }
    /** `POST /chats/{id}/members` (creator of a group) */
    addMembers(chatId, userIds, o = {}) {
      return this.call(ENDPOINTS.add_chat_members, { chat_id: chatId }, { body: { user_ids: userIds }, ...o });
    }
    /** `DELETE /chats/{id}/members/{user_id}` (that user, or the creator) */
    removeMember(chatId, userId, o = {}) {
      return this.call(ENDPOINTS.remove_chat_member, { chat_id: chatId, user_id: userId }, o);
    }
    /** Leaves a chat. */
    leave(chatId, o = {}) {
      const me = this.session.userId;
      if (me === void 0) return Promise.reject(new TypeError("not signed in"));
      return this.removeMember(chatId, me, o);
    }
    /** `POST /chats/{id}/read`: the read cursor only moves forward. */
    markRead(chatId, messageId, o = {}) {
      return this.call(ENDPOINTS.mark_chat_read, { chat_id: chatId }, { body: { message_id: messageId }, ...o });
    }
    /** v2 `GET /chats/{id}/reads` */
    reads(chatId, o = {}) {
      return this.call(ENDPOINTS.list_chat_reads, { chat_id: chatId }, o);
    }
  };
  var MessagesApi = class extends Caller {
    constructor(http, sender) {
      super(http);
      __publicField(this, "sender", sender);
    }
    /** `POST /chats/{id}/messages`, made reliable: retried with the same `client_id` after a
     * network error or a 5xx, and resolved once with the stored message (see sends.ts). */
    send(chatId, text, options = {}) {
      return this.sender.send(chatId, text, options);
    }
    /** Sends in flight (for optimistic UI), optionally of one chat. */
    pending(chatId) {
      return this.sender.list(chatId);
    }
    /** Called with the pending sends whenever they change; returns an unsubscribe. */
    onPending(listener) {
      return this.sender.changes.add(listener);
    }
    /** `GET /chats/{id}/messages?before=&after=&limit=`: ascending by id; no cursor = latest. */
    list(chatId, query = {}, o = {}) {
      return this.call(ENDPOINTS.list_messages, { chat_id: chatId }, { query, ...o });
    }
    /** `PATCH /chats/{id}/messages/{message_id}` (sender); a string edits the text. */
    edit(chatId, messageId, body, o = {}) {
      return this.call(
        ENDPOINTS.edit_message,
        { chat_id: chatId, message_id: messageId },
        { body: typeof body === "string" ? { text: body } : body, ...o }
      );
    }
    /** `DELETE /chats/{id}/messages/{message_id}` (sender or chat creator) */
    delete(chatId, messageId, o = {}) {
      return this.call(ENDPOINTS.delete_message, { chat_id: chatId, message_id: messageId }, o);
    }
    /** v2 `PUT .../reactions/{emoji}`: idempotent; the emoji is percent-encoded here. */
    react(chatId, messageId, emoji, o = {}) {
      return this.call(ENDPOINTS.add_reaction, { chat_id: chatId, message_id: messageId, emoji }, o);
    }
    /** v2 `DELETE .../reactions/{emoji}` */
    unreact(chatId, messageId, emoji, o = {}) {
      return this.call(ENDPOINTS.remove_reaction, { chat_id: chatId, message_id: messageId, emoji }, o);
    }
    /** v2 `GET /search/messages?q=&chat_id=&before=&limit=`: messages of the caller's chats
     * (or of `chatId`) with every word of `q` (the last one as a prefix), **newest first**;
     * page back with `before` = the last id of a page. */
    search(query, o = {}) {
      const { chatId, ...rest } = query;
      return this.call(ENDPOINTS.search_messages, {}, { query: { ...rest, chat_id: chatId }, ...o });
    }
  };
  var EventsRestApi = class extends Caller {
    /** `GET /events?since=&limit=`: the log after `since`, without a socket. A `since` the log
     * no longer covers is `410 resync_required`. */
    list(query = {}, o = {}) {
      return this.call(ENDPOINTS.list_events, {}, { query, ...o });
    }
  };
  var MiscApi = class extends Caller {
    /** v2 `GET /unread`: totals over the caller's active chats. */
    unread(o = {}) {
      return this.call(ENDPOINTS.get_unread_totals, {}, o);
    }
    /** v2 `GET /presence?user_ids=`: 1..100 ids, answered in the order asked. */
    presence(userIds, o = {}) {
      return this.call(ENDPOINTS.get_presence, {}, { query: { user_ids: userIds }, ...o });
    }
    /** `GET /healthz` */
    health(o = {}) {
      return this.call(ENDPOINTS.get_health, {}, { auth: false, ...o });
    }
    /** `GET /readyz` (503 `not_ready` throws) */
    readiness(o = {}) {
      return this.call(ENDPOINTS.get_readiness, {}, { auth: false, ...o });
    }
    /** `GET /metrics`: Prometheus text. */
    metrics(o = {}) {
      return this.call(ENDPOINTS.get_metrics, {}, { auth: false, accept: "text", ...o });
    }
    /** `GET /openapi.yaml` */
    openapi(o = {}) {
      return this.call(ENDPOINTS.get_openapi_spec, {}, { auth: false, accept: "text", ...o });
    }
  };

  // src/sends.ts
  var Sender = class {
    constructor(http, session, retry) {
      __publicField(this, "http", http);
      __publicField(this, "session", session);
      __publicField(this, "retry", retry);
      __publicField(this, "pending", /* @__PURE__ */ new Map());
      /** Fires with the pending sends whenever one starts, retries or ends. */
      __publicField(this, "changes", new Listeners());
    }
    /** The sends in flight, oldest first; optionally of one chat. */
    list(chatId) {
      return [...this.pending.values()].map((e) => e.info).filter((p) => chatId === void 0 || p.chatId === chatId);
    }
    send(chatId, text, options = {}) {
      const clientId = options.clientId ?? randomId();
      const existing = this.pending.get(clientId);
      if (existing) return existing.promise;
      let settle;
      const settledPromise = new Promise((resolve) => settle = resolve);
      const entry = {
        info: { clientId, chatId, text, startedAt: Date.now(), attempts: 0, lastError: void 0 },
        promise: void 0,
        settle: (message) => {
          if (entry.settled) return;
          entry.settled = true;
          settle(message);
        },
        settled: false
      };
      entry.promise = this.run(entry, settledPromise, options).finally(() => {
        this.pending.delete(clientId);
        this.emit();
      });
      this.pending.set(clientId, entry);
      this.emit();
      return entry.promise;
    }
    async run(entry, settled, options) {
      const { chatId, clientId, text } = entry.info;
      const body = { text, client_id: clientId };
      if (options.replyTo !== void 0) body.reply_to = options.replyTo;
      if (options.mentions !== void 0) body.mentions = options.mentions;
      const path = `/chats/${encodeURIComponent(chatId)}/messages`;
      const orSettled = (p) => Promise.race([p.then((value) => ({ value })), settled.then((message) => ({ message }))]);
      for (; ; ) {
        entry.info.attempts++;
        try {
          const r = await orSettled(this.http.request("POST", path, { body, signal: options.signal }));
          if ("message" in r) return r.message;
          entry.settle(r.value);
          return r.value;
        } catch (err) {
          if (entry.settled) return settled;
          const e = err instanceof RtchatError ? err : abortedError(err);
          const elapsed = Date.now() - entry.info.startedAt;
          const retryable = e.isTransient || e.status === 429 && e.code === "rate_limited";
          if (!retryable || e.code === "aborted" || elapsed >= this.retry.maxElapsedMs) throw e;
          entry.info.lastError = e;
          this.emit();
          const wait = Math.max(
            backoffDelay(this.retry, entry.info.attempts - 1),
            (e.retryAfter ?? 0) * 1e3
          );
          const r = await orSettled(
            sleep(Math.min(wait, this.retry.maxElapsedMs - elapsed), options.signal).catch((reason) => {
              throw abortedError(reason);
            })
          );
          if ("message" in r) return r.message;
        }
      }
    }
    /** Confirms a pending send from its `new_message` event. */
    observe(event) {
      if (event.type !== "new_message") return;
      const m = event.payload;
      if (m.client_id === null || m.sender_id !== this.session.userId) return;
      const entry = this.pending.get(m.client_id);
      if (entry && entry.info.chatId === m.chat_id) entry.settle(m);
    }
    emit() {
      if (this.changes.size > 0) this.changes.emit(this.list());
    }
  };

  // src/session.ts
  var MemoryTokenStore = class {
    constructor() {
      __publicField(this, "tokens", null);
    }
    load() {
      return this.tokens;
    }
    save(tokens) {
      this.tokens = tokens;
    }
  };
  var WebStorageTokenStore = class {
    constructor(storage, key = "rtchat.tokens") {
      __publicField(this, "storage", storage);
      __publicField(this, "key", key);
    }
    load() {
      const raw = this.storage.getItem(this.key);
      if (!raw) return null;
      try {
        const t = JSON.parse(raw);
        return typeof t.accessToken === "string" && typeof t.refreshToken === "string" ? t : null;
      } catch {
        return null;
      }
    }
    save(tokens) {
      if (tokens) this.storage.setItem(this.key, JSON.stringify(tokens));
      else this.storage.removeItem(this.key);
    }
  };
  var REFRESH_AT_REMAINING_SHARE = 0.2;
  var REFRESH_MARGIN_CAP_MS = 6e4;
  var REFRESH_RETRY = { baseMs: 1e3, maxMs: 3e4 };
  var REFRESH_LOCK = "rtchat.refresh";
  var MAX_TIMER_MS = 2 ** 31 - 1;
  var Session = class {
    constructor(store, refreshCall, now = Date.now) {
      __publicField(this, "store", store);
      __publicField(this, "refreshCall", refreshCall);
      __publicField(this, "now", now);
      __publicField(this, "tokens", null);
      __publicField(this, "loaded", null);
      __publicField(this, "inflight", null);
      __publicField(this, "timer");
      __publicField(this, "failures", 0);
      __publicField(this, "closed", false);
      __publicField(this, "events", new Listeners());
    }
    /** Loads the stored tokens once. */
    ready() {
      this.loaded ?? (this.loaded = (async () => {
        this.tokens = await this.store.load() ?? null;
        this.schedule();
      })());
      return this.loaded;
    }
    get current() {
      return this.tokens;
    }
    /** The user id in the access token's `sub`, if signed in. */
    get userId() {
      const sub = this.tokens ? jwtClaims(this.tokens.accessToken)?.sub : void 0;
      return sub !== void 0 && /^\d+$/.test(sub) ? Number(sub) : void 0;
    }
    /** Adopts a fresh pair (after login or refresh). */
    async setPair(pair) {
      const tokens = {
        accessToken: pair.access_token,
        refreshToken: pair.refresh_token,
        expiresAt: this.now() + pair.expires_in * 1e3,
        lifetimeMs: pair.expires_in * 1e3
      };
      await this.adopt(tokens);
      return tokens;
    }
    async adopt(tokens) {
      this.tokens = tokens;
      this.failures = 0;
      await this.store.save(tokens);
      this.schedule();
      this.events.emit({ type: "tokens", tokens });
    }
    /** Forgets the tokens (logout, or a refused refresh). */
    async clear(reason) {
      const had = this.tokens !== null;
      this.tokens = null;
      clearTimeout(this.timer);
      await this.store.save(null);
      if (had) this.events.emit({ type: "signed_out", reason });
    }
    /** An access token to use now: refreshed first when it is about to expire. Null when
     * signed out. */
    async accessToken() {
      await this.ready();
      const t = this.tokens;
      if (!t) return null;
      if (t.expiresAt - this.now() > this.margin(t)) return t.accessToken;
      try {
        return await this.refresh(t.accessToken);
      } catch (err) {
        const still = this.tokens;
        if (still && still.expiresAt > this.now()) return still.accessToken;
        throw err;
      }
    }
    /** Refreshes the pair unless `stale` is no longer the current access token (someone else
     * refreshed meanwhile). One refresh at a time. Resolves to the new access token, or null
     * when the session ended; rejects on a network error (the tokens are kept for a retry). */
    refresh(stale) {
      const locks = globalThis.navigator?.locks;
      const run = () => this.doRefresh(stale);
      this.inflight ?? (this.inflight = (locks ? locks.request(REFRESH_LOCK, run) : run()).finally(() => {
        this.inflight = null;
      }));
      return this.inflight;
    }
    async doRefresh(stale) {
      await this.ready();
      const stored = await this.store.load() ?? null;
      if (stored && this.tokens && stored.refreshToken !== this.tokens.refreshToken) {
        await this.adopt(stored);
      }
      const t = this.tokens;
      if (!t) return null;
      if (stale !== void 0 && t.accessToken !== stale && t.expiresAt - this.now() > this.margin(t)) {
        return t.accessToken;
      }
      try {
        const pair = await this.refreshCall(t.refreshToken);
        if (this.tokens !== t) return this.tokens?.accessToken ?? null;
        await this.setPair(pair);
        return pair.access_token;
      } catch (err) {
        if (err instanceof RtchatError && err.status === 401) {
          await this.clear("refresh_refused");
          return null;
        }
        this.failures++;
        this.schedule();
        throw err;
      }
    }
    /** How long before expiry the token counts as expiring: a share of its lifetime, at
     * least a second (clock and network), at most a minute. */
    margin(t) {
      const lifetime = t.lifetimeMs ?? REFRESH_MARGIN_CAP_MS / REFRESH_AT_REMAINING_SHARE;
      return Math.min(REFRESH_MARGIN_CAP_MS, Math.max(1e3, lifetime * REFRESH_AT_REMAINING_SHARE));
    }
    /** Plans the background refresh: when the margin starts, or after a failed attempt. */
    schedule() {
      clearTimeout(this.timer);
      const t = this.tokens;
      if (!t || this.closed) return;
      let delay = Math.max(0, t.expiresAt - this.now() - this.margin(t));
      if (this.failures > 0) delay = Math.min(delay, backoffDelay(REFRESH_RETRY, this.failures) + 500);
      if (delay > MAX_TIMER_MS) {
        this.timer = setTimeout(() => this.schedule(), MAX_TIMER_MS);
        this.timer.unref?.();
        return;
      }
      this.timer = setTimeout(() => {
        this.refresh(t.accessToken).catch(() => {
        });
      }, delay);
      this.timer.unref?.();
    }
    /** Stops the background refresh (the client is closed). */
    close() {
      this.closed = true;
      clearTimeout(this.timer);
    }
  };

  // src/state.ts
  var ChatListState = class {
    constructor(api, stream, me) {
      __publicField(this, "api", api);
      __publicField(this, "stream", stream);
      __publicField(this, "me", me);
      __publicField(this, "chats", /* @__PURE__ */ new Map());
      /** Chats being fetched again, and those whose fetch must repeat (an event came meanwhile). */
      __publicField(this, "refetching", /* @__PURE__ */ new Map());
      __publicField(this, "subscription");
      __publicField(this, "loadedOnce", false);
      /** Chats that events touched while a load was in flight, one set per load. */
      __publicField(this, "touchedDuringLoad", []);
      __publicField(this, "changes", new Listeners());
    }
    /** Follows the stream and loads the chats; resolves after the first load. */
    start() {
      this.subscription = this.stream.subscribe((e) => this.apply(e), { onResync: () => this.load() });
      return this.load();
    }
    stop() {
      this.subscription?.unsubscribe();
    }
    /** The chats, most recent activity first. */
    get list() {
      return [...this.chats.values()].sort(byActivity);
    }
    get(chatId) {
      return this.chats.get(chatId);
    }
    /** The badge: unread messages over all active chats. */
    get totalUnread() {
      let n = 0;
      for (const c of this.chats.values()) if (c.is_active) n += c.unread_count;
      return n;
    }
    /** v2: unread messages that mention the caller, over all active chats (0 on v1). */
    get totalMentions() {
      let n = 0;
      for (const c of this.chats.values()) if (c.is_active) n += c.unread_mentions ?? 0;
      return n;
    }
    get loaded() {
      return this.loadedOnce;
    }
    /** (Re)loads every chat over REST. */
    async load() {
      const touched = /* @__PURE__ */ new Set();
      this.touchedDuringLoad.push(touched);
      try {
        const all = await this.api.listAll();
        this.chats.clear();
        for (const c of all) this.chats.set(c.id, c);
        this.loadedOnce = true;
      } finally {
        this.touchedDuringLoad.splice(this.touchedDuringLoad.indexOf(touched), 1);
      }
      for (const id of touched) this.refetch(id);
      this.changed();
    }
    /** Applies one durable event. */
    apply(event) {
      const chatId = event.type === "create_chat" || event.type === "update_chat" || event.type === "delete_chat" ? event.payload.id : event.payload.chat_id;
      for (const touched of this.touchedDuringLoad) touched.add(chatId);
      if (this.refetching.has(chatId)) this.refetching.set(chatId, true);
      switch (event.type) {
        case "create_chat":
        case "update_chat": {
          const old = this.chats.get(event.payload.id);
          this.chats.set(event.payload.id, {
            last_message: null,
            unread_count: 0,
            unread_mentions: 0,
            last_read_message_id: null,
            ...old,
            ...event.payload
          });
          if (!old) this.refetch(event.payload.id);
          break;
        }
        case "delete_chat":
          this.chats.delete(event.payload.id);
          break;
        case "new_message": {
          const m = event.payload;
          const chat = this.chats.get(m.chat_id);
          if (!chat) {
            this.refetch(m.chat_id);
            return;
          }
          if (chat.last_message && chat.last_message.id >= m.id) return;
          chat.last_message = m;
          const me = this.me();
          if (m.sender_id !== me && (chat.last_read_message_id ?? 0) < m.id) {
            chat.unread_count++;
            if (chat.unread_mentions !== void 0 && me !== void 0 && m.mentions?.includes(me)) chat.unread_mentions++;
          }
          break;
        }
        case "update_message": {
          const m = event.payload;
          const chat = this.chats.get(m.chat_id);
          if (!chat) return;
          if (chat.last_message?.id === m.id) chat.last_message = m;
          if (chat.unread_mentions !== void 0 && m.sender_id !== this.me() && (chat.last_read_message_id ?? 0) < m.id) {
            this.refetch(chat.id);
          }
          break;
        }
        case "delete_message": {
          const chat = this.chats.get(event.payload.chat_id);
          if (chat && (chat.last_message?.id === event.payload.id || (chat.last_read_message_id ?? 0) < event.payload.id)) {
            this.refetch(chat.id);
          }
          return;
        }
        case "read": {
          const r = event.payload;
          const chat = this.chats.get(r.chat_id);
          if (!chat || r.user_id !== this.me()) return;
          if ((chat.last_read_message_id ?? 0) >= r.message_id) return;
          chat.last_read_message_id = r.message_id;
          if (!chat.last_message || r.message_id >= chat.last_message.id) {
            chat.unread_count = 0;
            if (chat.unread_mentions !== void 0) chat.unread_mentions = 0;
          } else this.refetch(chat.id);
          break;
        }
        case "reaction":
          return;
      }
      this.changed();
    }
    /** Fetches one chat again; a fetch that overlaps an event repeats, so the last word is
     * the server's state after the event. */
    refetch(chatId) {
      if (this.refetching.has(chatId)) {
        this.refetching.set(chatId, true);
        return;
      }
      this.refetching.set(chatId, false);
      this.api.get(chatId).then(
        (chat) => {
          this.chats.set(chatId, chat);
        },
        (err) => {
          if (err.status === 404) this.chats.delete(chatId);
        }
      ).finally(() => {
        const again = this.refetching.get(chatId);
        this.refetching.delete(chatId);
        if (again) this.refetch(chatId);
        else this.changed();
      });
    }
    changed() {
      if (this.changes.size > 0) this.changes.emit(this.list);
    }
  };
  function byActivity(a, b) {
    const ta = a.last_message?.created_at ?? a.created_at;
    const tb = b.last_message?.created_at ?? b.created_at;
    if (ta !== tb) return ta < tb ? 1 : -1;
    return b.id - a.id;
  }
  var MessageWindow = class {
    constructor(api, stream, chatId, pageSize = 50, me = () => void 0) {
      __publicField(this, "api", api);
      __publicField(this, "stream", stream);
      __publicField(this, "chatId", chatId);
      __publicField(this, "pageSize", pageSize);
      __publicField(this, "me", me);
      __publicField(this, "messages", /* @__PURE__ */ new Map());
      __publicField(this, "pendingSends", []);
      __publicField(this, "subscription");
      __publicField(this, "stopPending");
      __publicField(this, "ops", Promise.resolve());
      /** This chat's events seen while a page load was in flight, one list per load: the pages
       * may predate them, so they are applied again on top of what was loaded. */
      __publicField(this, "eventsDuringLoad", []);
      /** Whether older messages exist on the server than the oldest one here. */
      __publicField(this, "hasOlder", false);
      __publicField(this, "changes", new Listeners());
    }
    /** Loads the latest page and follows the chat. */
    async start() {
      this.subscription = this.stream.subscribe((e) => this.apply(e), { onResync: () => this.loadLatest() });
      this.stopPending = this.api.onPending((all) => {
        this.pendingSends = all.filter((p) => p.chatId === this.chatId);
        this.changed();
      });
      await this.loadLatest();
    }
    stop() {
      this.subscription?.unsubscribe();
      this.stopPending?.();
    }
    /** Loads the latest messages again, as far back as the window reaches (at least a page),
     * keeping messages that arrived live while it loaded (the pages may predate them). After a
     * resync anything held may be stale (edited, deleted), so all of it is fetched anew. */
    loadLatest() {
      return this.serial(() => this.doLoadLatest());
    }
    /** Loads and paging run one at a time, so a reload after a resync and a page of history
     * asked for meanwhile each see what the other did. */
    serial(op) {
      const result = this.ops.then(op);
      this.ops = result.catch(() => void 0);
      return result;
    }
    async doLoadLatest() {
      const reach = this.sorted()[0]?.id;
      const live = [];
      this.eventsDuringLoad.push(live);
      const loaded = [];
      let hasOlder;
      try {
        let page = await this.api.list(this.chatId, { limit: this.pageSize });
        loaded.push(...page.messages);
        while (page.has_more && reach !== void 0 && (page.messages[0]?.id ?? 0) > reach) {
          const first = page.messages[0];
          if (!first) break;
          page = await this.api.list(this.chatId, { before: first.id, limit: this.pageSize });
          loaded.push(...page.messages);
        }
        hasOlder = page.has_more;
      } finally {
        this.eventsDuringLoad.splice(this.eventsDuringLoad.indexOf(live), 1);
      }
      this.messages.clear();
      for (const m of loaded) this.messages.set(m.id, m);
      for (const e of live) this.mutate(e);
      this.hasOlder = hasOlder;
      this.changed();
    }
    /** Loads the page before the oldest message held. False when there was none. */
    loadOlder() {
      return this.serial(() => this.doLoadOlder());
    }
    async doLoadOlder() {
      const oldest = this.sorted()[0];
      if (!oldest || !this.hasOlder) return false;
      const live = [];
      this.eventsDuringLoad.push(live);
      let page;
      try {
        page = await this.api.list(this.chatId, { before: oldest.id, limit: this.pageSize });
      } finally {
        this.eventsDuringLoad.splice(this.eventsDuringLoad.indexOf(live), 1);
      }
      const fresh = page.messages.filter((m) => !this.messages.has(m.id));
      for (const m of fresh) this.messages.set(m.id, m);
      for (const e of live) this.mutate(e, new Set(fresh.map((m) => m.id)));
      this.hasOlder = page.has_more;
      this.changed();
      return page.messages.length > 0;
    }
    /** The message with this id, if the window holds it. */
    get(messageId) {
      return this.messages.get(messageId);
    }
    /** Sends a message to this chat (shown as pending until stored); `options` carries a
     * v2 `replyTo` and `mentions`. */
    send(text, options = {}) {
      return this.api.send(this.chatId, text, options).then((m) => {
        this.messages.set(m.id, m);
        this.changed();
        return m;
      });
    }
    /** Stored messages ascending by id, then pending sends not yet stored. */
    get entries() {
      const stored = this.sorted();
      const storedClientIds = new Set(stored.map((m) => m.client_id).filter((c) => c !== null));
      const out = stored.map((message) => ({ kind: "message", message }));
      for (const pending of this.pendingSends) {
        if (!storedClientIds.has(pending.clientId)) out.push({ kind: "pending", pending });
      }
      return out;
    }
    apply(event) {
      const chatId = event.type === "delete_chat" ? event.payload.id : "chat_id" in event.payload ? event.payload.chat_id : void 0;
      if (chatId !== this.chatId) return;
      for (const live of this.eventsDuringLoad) live.push(event);
      if (this.mutate(event)) this.changed();
    }
    /** Applies one event of this chat to the messages held (only to `only`, if given);
     * true when something changed. Applying an event twice is harmless (a page may already
     * reflect it): each one states the new state, not a difference. */
    mutate(event, only) {
      switch (event.type) {
        case "new_message":
        case "update_message": {
          const m = event.payload;
          if (only && !only.has(m.id)) return false;
          const held = this.messages.get(m.id);
          if (event.type === "update_message" && !held) return false;
          const mine = held?.my_reactions ?? (event.type === "new_message" && m.reactions ? [] : void 0);
          this.messages.set(m.id, mine !== void 0 && m.my_reactions === void 0 ? { ...m, my_reactions: mine } : m);
          return true;
        }
        case "delete_message":
          if (only && !only.has(event.payload.id)) return false;
          return this.messages.delete(event.payload.id);
        case "delete_chat":
          this.messages.clear();
          this.hasOlder = false;
          return true;
        case "reaction": {
          const r = event.payload;
          const m = only && !only.has(r.message_id) ? void 0 : this.messages.get(r.message_id);
          if (!m) return false;
          const reactions = (m.reactions ?? []).map((x) => x.emoji === r.emoji ? { ...x, count: r.count } : x);
          if (!reactions.some((x) => x.emoji === r.emoji)) reactions.push({ emoji: r.emoji, count: r.count });
          const updated = { ...m, reactions: reactions.filter((x) => x.count > 0) };
          if (r.user_id === this.me()) {
            const mine = (m.my_reactions ?? []).filter((e) => e !== r.emoji);
            updated.my_reactions = r.added ? [...mine, r.emoji] : mine;
          }
          this.messages.set(m.id, updated);
          return true;
        }
        default:
          return false;
      }
    }
    sorted() {
      return [...this.messages.values()].sort((a, b) => a.id - b.id);
    }
    changed() {
      if (this.changes.size > 0) this.changes.emit(this.entries);
    }
  };

  // src/stream.ts
  var MemoryCursorStore = class {
    constructor() {
      __publicField(this, "cursors", /* @__PURE__ */ new Map());
    }
    load(userId) {
      return this.cursors.get(userId) ?? null;
    }
    save(userId, seq) {
      this.cursors.set(userId, seq);
    }
  };
  var WebStorageCursorStore = class {
    constructor(storage, prefix = "rtchat.cursor.") {
      __publicField(this, "storage", storage);
      __publicField(this, "prefix", prefix);
    }
    load(userId) {
      const raw = this.storage.getItem(this.prefix + userId);
      return raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
    }
    save(userId, seq) {
      this.storage.setItem(this.prefix + userId, String(seq));
    }
  };
  var MAX_QUEUED_FRAMES = 5e3;
  var STABLE_AFTER_MS = 1e4;
  var PROBE_AFTER_FAILURES = 2;
  var MIN_PING_INTERVAL_MS = 500;
  var CLIENT_FAULT_CODES = /* @__PURE__ */ new Set([1002, 1003, 1007, 1008, 1009]);
  var CLOSE_TOKEN_EXPIRED = 4001;
  var KNOWN_TYPES = /* @__PURE__ */ new Set([
    "create_chat",
    "update_chat",
    "delete_chat",
    "new_message",
    "update_message",
    "delete_message",
    "read",
    "reaction"
  ]);
  var EventStream = class {
    constructor(session, options) {
      __publicField(this, "session", session);
      __publicField(this, "options", options);
      __publicField(this, "subscribers", /* @__PURE__ */ new Set());
      /** Hooks that see every event before the subscribers (the send tracker). */
      __publicField(this, "observers", new Listeners());
      __publicField(this, "conn", null);
      __publicField(this, "cursor", null);
      __publicField(this, "cursorUser");
      /** A cursor to start from instead of the stored one (subscribe's `since`). */
      __publicField(this, "startAt", null);
      __publicField(this, "stateValue", "idle");
      __publicField(this, "attempt", 0);
      __publicField(this, "connectCalls", 0);
      __publicField(this, "failuresWithoutReady", 0);
      __publicField(this, "retryTimer");
      /** Frames are handled one at a time, in arrival order, on this chain. */
      __publicField(this, "chain", Promise.resolve());
      __publicField(this, "queued", 0);
      __publicField(this, "running", false);
      /** Bumped by every start/stop so a stale async step can tell it lost. */
      __publicField(this, "epoch", 0);
      __publicField(this, "stats", { delivered: 0, connects: 0, duplicates: 0, gaps: 0, resyncs: 0 });
      session.events.add((e) => {
        if (e.type === "signed_out") this.signedOut();
        else if (this.running && this.stateValue === "signed_out") void this.connect(this.epoch);
        else if (this.running && this.cursorUser !== void 0 && session.userId !== this.cursorUser) {
          clearTimeout(this.retryTimer);
          if (this.conn) this.abandon(this.conn, 1e3, "another user signed in");
          this.conn = null;
          void this.connect(this.epoch);
        }
      });
    }
    get state() {
      return this.stateValue;
    }
    /** The last `seq` handled, or null before the first `ready`. */
    get lastSeq() {
      return this.cursor;
    }
    subscribe(handler, options = {}) {
      if (!this.webSocket()) throw new TypeError("no WebSocket implementation: pass one as the `WebSocket` option");
      const subscriber = { handler, options };
      this.subscribers.add(subscriber);
      if (options.since !== void 0 && !this.running) this.startAt = options.since;
      if (!this.running) this.start();
      else if (this.stateValue === "signed_out") void this.connect(this.epoch);
      return {
        unsubscribe: () => {
          this.subscribers.delete(subscriber);
          if (this.subscribers.size === 0) this.stop();
        }
      };
    }
    webSocket() {
      return this.options.WebSocket ?? globalThis.WebSocket;
    }
    /** Tells the chat's other members that the user is typing. False when not connected. */
    typing(chatId) {
      return this.sendFrame({ type: "typing", payload: { chat_id: chatId } });
    }
    sendFrame(frame) {
      const c = this.conn;
      if (!c || c.dead || !c.ready) return false;
      try {
        c.ws.send(JSON.stringify(frame));
        return true;
      } catch {
        return false;
      }
    }
    start() {
      this.running = true;
      this.epoch++;
      void this.connect(this.epoch);
    }
    /** Closes the socket and stops reconnecting. */
    stop() {
      this.running = false;
      this.epoch++;
      clearTimeout(this.retryTimer);
      if (this.conn) this.abandon(this.conn, 1e3, "unsubscribed");
      this.conn = null;
      this.setState("idle");
    }
    /** Reconnects now if waiting out a backoff (the browser says it is online again). */
    nudge() {
      if (this.running && this.stateValue === "waiting") {
        clearTimeout(this.retryTimer);
        void this.connect(this.epoch);
      }
    }
    signedOut() {
      if (!this.running) return;
      clearTimeout(this.retryTimer);
      if (this.conn) this.abandon(this.conn, 1e3, "signed out");
      this.conn = null;
      this.setState("signed_out");
    }
    setState(state2) {
      if (state2 === this.stateValue) return;
      this.stateValue = state2;
      for (const s of [...this.subscribers]) s.options.onState?.(state2);
    }
    problem(problem) {
      let heard = false;
      for (const s of [...this.subscribers]) {
        if (s.options.onProblem) {
          heard = true;
          s.options.onProblem(problem);
        }
      }
      if (!heard && problem.kind === "protocol_violation") {
        console.error(`@rtchat/client: the server broke the seq contract (${problem.detail}: cursor ${problem.cursor}, got ${problem.seq}); please report it`);
      }
    }
    async connect(epoch) {
      const call = ++this.connectCalls;
      const stale = () => call !== this.connectCalls || epoch !== this.epoch || !this.running;
      await this.chain;
      if (stale() || this.conn && !this.conn.dead) return;
      this.setState("connecting");
      let token;
      try {
        token = await this.session.accessToken();
      } catch {
        if (!stale()) this.retry(epoch);
        return;
      }
      if (stale()) return;
      if (!token) {
        this.setState("signed_out");
        return;
      }
      const userId = this.session.userId;
      if (userId !== this.cursorUser) {
        this.cursorUser = userId;
        this.cursor = this.startAt ?? (userId !== void 0 ? await this.options.cursorStore.load(userId) : null);
        this.startAt = null;
        if (stale()) return;
      }
      const Ctor = this.webSocket();
      if (!Ctor) return;
      const url = new URL(this.options.url);
      url.searchParams.set("token", token);
      if (this.cursor !== null) url.searchParams.set("since", String(this.cursor));
      let ws;
      try {
        ws = new Ctor(url.toString());
      } catch {
        this.retry(epoch);
        return;
      }
      this.stats.connects++;
      const conn = {
        ws,
        token,
        ready: null,
        readyAt: 0,
        lastHeard: Date.now(),
        dead: false,
        pingTimer: void 0,
        connectTimer: void 0
      };
      this.conn = conn;
      conn.connectTimer = setTimeout(() => {
        if (!conn.ready && !conn.dead) this.lost(conn, 0, "no ready frame in time");
      }, this.options.connectTimeoutMs);
      ws.onmessage = (event) => {
        if (conn.dead) return;
        conn.lastHeard = Date.now();
        if (typeof event.data !== "string") return;
        if (++this.queued > MAX_QUEUED_FRAMES) {
          this.lost(conn, 0, "handlers fell behind");
          return;
        }
        const raw = event.data;
        this.chain = this.chain.then(() => this.handleFrame(conn, raw)).catch(() => {
        }).finally(() => {
          this.queued--;
        });
      };
      ws.onclose = (event) => {
        this.lost(conn, event.code ?? 1006, event.reason ?? "");
      };
      ws.onerror = () => {
      };
    }
    /** A connection ended (closed, stalled, or given up on): plan what comes next. */
    lost(conn, code, reason) {
      if (conn.dead) return;
      this.abandon(conn, 4e3, reason);
      if (this.conn === conn) this.conn = null;
      if (!this.running) return;
      this.problem({ kind: "closed", code, reason });
      const epoch = this.epoch;
      if (conn.ready) {
        this.failuresWithoutReady = 0;
        if (Date.now() - conn.readyAt >= STABLE_AFTER_MS) this.attempt = 0;
      } else {
        this.failuresWithoutReady++;
      }
      if (code === CLOSE_TOKEN_EXPIRED) {
        const refusedAtOnce = !conn.ready || Date.now() - conn.readyAt < STABLE_AFTER_MS / 10;
        this.session.refresh(conn.token).then(
          (token) => {
            if (epoch !== this.epoch) return;
            if (!token) this.signedOut();
            else if (refusedAtOnce) this.retry(epoch);
            else void this.connect(epoch);
          },
          () => this.retry(epoch)
        );
        return;
      }
      if (CLIENT_FAULT_CODES.has(code)) this.attempt = Math.max(this.attempt, 4);
      if (this.failuresWithoutReady > 0 && this.failuresWithoutReady % PROBE_AFTER_FAILURES === 0) {
        this.options.probe().catch(() => void 0);
      }
      this.retry(epoch);
    }
    /** Stops listening to a socket and closes it without waiting for the close handshake. */
    abandon(conn, code, reason) {
      conn.dead = true;
      clearTimeout(conn.connectTimer);
      clearInterval(conn.pingTimer);
      const ws = conn.ws;
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => void 0;
      try {
        const terminate = ws.terminate;
        if (terminate) terminate.call(ws);
        else ws.close(code, reason.slice(0, 100));
      } catch {
      }
    }
    retry(epoch) {
      if (epoch !== this.epoch || !this.running) return;
      const delay = backoffDelay(this.options.backoff, this.attempt++);
      this.setState("waiting");
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => void this.connect(epoch), delay);
    }
    async handleFrame(conn, raw) {
      if (conn.dead) return;
      let frame;
      try {
        frame = JSON.parse(raw);
      } catch {
        return;
      }
      if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
      if (typeof frame.seq === "number") {
        await this.handleEvent(conn, frame);
        return;
      }
      switch (frame.type) {
        case "ready":
          await this.handleReady(conn, frame.payload);
          return;
        case "resync_required": {
          const given = frame.payload?.seq;
          const seq = typeof given === "number" ? given : conn.ready?.seq ?? 0;
          await this.resync({ reason: "resync_required", seq });
          return;
        }
        case "typing":
          for (const s of [...this.subscribers]) s.options.onTyping?.(frame.payload);
          return;
        case "presence":
          for (const s of [...this.subscribers]) s.options.onPresence?.(frame.payload);
          return;
        case "error":
          this.problem({ kind: "server_error", error: frame.payload });
          return;
        default:
          return;
      }
    }
    async handleReady(conn, ready) {
      clearTimeout(conn.connectTimer);
      conn.ready = ready;
      conn.readyAt = Date.now();
      this.failuresWithoutReady = 0;
      const interval = Math.max(
        MIN_PING_INTERVAL_MS,
        this.options.pingIntervalMs ?? ready.heartbeat_interval_ms
      );
      let pingSentAt = 0;
      let lastPingAt = Date.now();
      const tick = Math.max(MIN_PING_INTERVAL_MS / 2, Math.min(interval, this.options.pongTimeoutMs) / 2);
      conn.pingTimer = setInterval(() => {
        if (conn.dead) return;
        const now = Date.now();
        if (pingSentAt > conn.lastHeard) {
          if (now - pingSentAt > this.options.pongTimeoutMs) this.lost(conn, 0, "no answer to a ping");
          return;
        }
        if (now - lastPingAt < interval) return;
        try {
          conn.ws.send('{"type":"ping"}');
          pingSentAt = lastPingAt = now;
        } catch {
        }
      }, tick);
      this.setState("open");
      for (const s of [...this.subscribers]) s.options.onReady?.(ready);
      if (this.cursor === null) await this.resync({ reason: "initial", seq: ready.seq });
    }
    /** Every subscriber hears it, even if the socket drops meanwhile: the cursor has moved,
     * so the next socket will not say it again. */
    async resync(info) {
      this.stats.resyncs++;
      await this.advance(info.seq);
      for (const s of [...this.subscribers]) {
        try {
          await s.options.onResync?.(info);
        } catch (error) {
          this.problem({ kind: "handler_error", seq: info.seq, error });
        }
      }
    }
    async handleEvent(conn, event) {
      const cursor = this.cursor;
      if (!conn.ready || cursor === null) {
        this.violation(conn, "an event before the ready frame", cursor ?? 0, event.seq);
        return;
      }
      if (event.seq <= cursor) {
        this.stats.duplicates++;
        this.problem({ kind: "protocol_violation", detail: "duplicate seq", cursor, seq: event.seq });
        return;
      }
      if (event.seq !== cursor + 1) {
        this.stats.gaps++;
        this.violation(conn, "gap in seq", cursor, event.seq);
        return;
      }
      if (KNOWN_TYPES.has(event.type)) {
        this.observers.emit(event);
        for (const s of [...this.subscribers]) {
          try {
            await s.handler(event);
          } catch (error) {
            this.problem({ kind: "handler_error", seq: event.seq, error });
          }
        }
      } else {
        for (const s of [...this.subscribers]) {
          try {
            await s.options.onUnknownEvent?.(event);
          } catch (error) {
            this.problem({ kind: "handler_error", seq: event.seq, error });
          }
        }
      }
      this.stats.delivered++;
      await this.advance(event.seq);
    }
    /** A frame out of order: not delivered; this socket is dropped and the stream resumes from
     * the cursor, where the server replays what is missing. */
    violation(conn, detail, cursor, seq) {
      this.problem({ kind: "protocol_violation", detail, cursor, seq });
      if (this.conn === conn) this.lost(conn, 0, detail);
    }
    async advance(seq) {
      this.cursor = seq;
      if (this.cursorUser !== void 0) await this.options.cursorStore.save(this.cursorUser, seq);
    }
  };

  // src/client.ts
  var EventsApi = class extends EventsRestApi {
    constructor(http, stream) {
      super(http);
      __publicField(this, "stream", stream);
    }
    /** Every durable event exactly once, in `seq` order, across reconnects; see
     * SubscribeOptions for resyncs, typing, presence and problems. `since` starts from that
     * seq instead of the stored cursor. */
    subscribe(handler, options = {}) {
      return this.stream.subscribe(handler, options);
    }
    /** Sends a `typing` frame for the chat; false when the socket is not open. */
    typing(chatId) {
      return this.stream.typing(chatId);
    }
    get state() {
      return this.stream.state;
    }
    /** The last `seq` handled. */
    get lastSeq() {
      return this.stream.lastSeq;
    }
    get stats() {
      return this.stream.stats;
    }
  };
  var RtchatClient = class {
    constructor(options) {
      __publicField(this, "auth");
      __publicField(this, "users");
      __publicField(this, "chats");
      __publicField(this, "messages");
      __publicField(this, "events");
      /** v2 totals and presence, health and metrics. */
      __publicField(this, "misc");
      __publicField(this, "session");
      __publicField(this, "stream");
      __publicField(this, "offOnline");
      const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
      this.session = new Session(
        options.tokenStore ?? new MemoryTokenStore(),
        (refreshToken) => http.request("POST", "/auth/refresh", { body: { refresh_token: refreshToken }, auth: false })
      );
      const http = new Http(
        {
          baseUrl: options.baseUrl,
          fetch: fetchImpl,
          timeoutMs: options.requestTimeoutMs ?? 15e3,
          rateLimitRetries: options.rateLimit?.retries ?? 2,
          maxRetryAfterSecs: options.rateLimit?.maxRetryAfterSecs ?? 5
        },
        this.session
      );
      const wsUrl = new URL(http.url("/ws/notif"));
      wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
      this.auth = new AuthApi(http, this.session);
      this.stream = new EventStream(this.session, {
        url: wsUrl.toString(),
        WebSocket: options.WebSocket,
        cursorStore: options.cursorStore ?? new MemoryCursorStore(),
        backoff: { baseMs: 500, maxMs: 3e4, ...options.reconnect },
        pingIntervalMs: options.pingIntervalMs,
        pongTimeoutMs: options.pongTimeoutMs ?? 1e4,
        connectTimeoutMs: options.connectTimeoutMs ?? 15e3,
        probe: () => this.auth.me()
      });
      const sender = new Sender(http, this.session, {
        baseMs: 500,
        maxMs: 1e4,
        maxElapsedMs: 12e4,
        ...options.sendRetry
      });
      this.stream.observers.add((event) => sender.observe(event));
      this.users = new UsersApi(http);
      this.chats = new ChatsApi(http, this.session);
      this.messages = new MessagesApi(http, sender);
      this.events = new EventsApi(http, this.stream);
      this.misc = new MiscApi(http);
      const target = globalThis;
      const online = () => this.stream.nudge();
      target.addEventListener?.("online", online);
      this.offOnline = () => target.removeEventListener?.("online", online);
    }
    /** Resolves once the stored tokens are loaded (a reloaded page's session). */
    async ready() {
      await this.session.ready();
    }
    /** A chat list kept right by the events (call `start()` on it). */
    chatList() {
      return new ChatListState(this.chats, this.stream, () => this.session.userId);
    }
    /** One chat's message window kept right by the events (call `start()` on it). */
    messageWindow(chatId, pageSize) {
      return new MessageWindow(this.messages, this.stream, chatId, pageSize, () => this.session.userId);
    }
    /** Stops the stream and the background refresh (keeps the stored tokens). */
    close() {
      this.stream.stop();
      this.session.close();
      this.offOnline();
    }
  };

  // demo/app.ts
  function $(id) {
    const e = document.getElementById(id);
    if (!e) throw new Error(`#${id} is missing from the page`);
    return e;
  }
  var el = {
    error: $("error"),
    wsStatus: $("ws-status"),
    whoami: $("whoami"),
    unreadTotal: $("unread-total"),
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
    searchForm: $("message-search-form"),
    search: $("message-search"),
    searchResults: $("search-results"),
    chatTitle: $("chat-title"),
    chatMembers: $("chat-members"),
    loadOlder: $("load-older"),
    messages: $("messages"),
    seenBy: $("seen-by"),
    typing: $("typing"),
    replyBar: $("reply-bar"),
    replyQuote: $("reply-quote"),
    replyCancel: $("reply-cancel"),
    messageForm: $("message-form"),
    messageText: $("message-text"),
    send: $("send")
  };
  var TYPING_SEND_EVERY_MS = 3e3;
  var TYPING_SHOW_MS = 4e3;
  var PAGE_SIZE = 50;
  var PICKER_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
  var PRESENCE_BATCH = 100;
  var SEARCH_LIMIT = 20;
  var JUMP_MAX_PAGES = 5;
  var LIVE_STATE_MAX_MEMBERS = 100;
  var BIG_CHAT_POLL_MS = 3e4;
  var client = new RtchatClient({
    baseUrl: location.origin,
    tokenStore: new WebStorageTokenStore(sessionStorage, "rtchat.session"),
    cursorStore: new WebStorageCursorStore(sessionStorage, "rtchat.cursor.")
  });
  var state = {
    me: null,
    chats: null,
    window: null,
    stream: null,
    /** user id -> User, or null while it is being fetched */
    users: /* @__PURE__ */ new Map(),
    currentChatId: null,
    lastTypingSentAt: 0,
    typingUsers: /* @__PURE__ */ new Map(),
    readTimer: void 0,
    renderQueued: false,
    /** The open chat's read cursors (user id -> last read message id). */
    reads: /* @__PURE__ */ new Map(),
    /** Replied-to messages the window does not hold: the message, null when deleted, or
     * "loading". Only for the open chat. */
    quotes: /* @__PURE__ */ new Map(),
    /** Presence of the users the page shows (members of the open chat, private partners). */
    presence: /* @__PURE__ */ new Map(),
    replyTo: null,
    /** The message whose reaction picker is open. */
    pickerFor: null,
    /** A search result just jumped to, highlighted for a moment. */
    flashId: null,
    bigChatTimer: void 0
  };
  function describeError(err) {
    if (err instanceof RtchatError) {
      if (err.code === "network_error") return "The server cannot be reached. Check your connection.";
      const fields = err.errors.map((e) => `${e.field}: ${e.message}`).join("; ");
      let text = fields ? `${err.detail} (${fields})` : err.detail;
      if (err.code === "rate_limited" && err.retryAfter) text += ` — retry in ${err.retryAfter} s`;
      return text;
    }
    return err instanceof Error ? err.message : String(err);
  }
  var errorTimer;
  function showError(err) {
    el.error.textContent = typeof err === "string" ? err : describeError(err);
    el.error.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => el.error.hidden = true, 1e4);
  }
  function clearError() {
    el.error.hidden = true;
    el.authError.hidden = true;
  }
  function formatTime(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== void 0) n.textContent = text;
    return n;
  }
  async function logIn(email, password) {
    await client.auth.login(email, password);
    await startSession();
  }
  async function register(email, password, name) {
    await client.auth.register({ email, name, password });
    await logIn(email, password);
  }
  async function startSession() {
    const me = await client.auth.me();
    state.me = me;
    state.users.set(me.id, me);
    el.whoami.textContent = `${me.name} (#${me.id})`;
    el.whoami.dataset.userId = String(me.id);
    el.authPanel.hidden = true;
    el.appPanel.hidden = false;
    el.logout.hidden = false;
    el.password.value = "";
    state.stream = client.events.subscribe(onEvent, {
      onState: setStatus,
      onTyping,
      onPresence: (p) => {
        state.presence.set(p.user_id, p);
        queueRender();
      },
      // Presence is not replayed: after every (re)connect, ask for what the page shows.
      onReady: () => void refreshPresence([...shownUsers()])
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
  function onEvent(e) {
    if (e.type === "read" && e.payload.chat_id === state.currentChatId) {
      const { user_id, message_id } = e.payload;
      if ((state.reads.get(user_id) ?? 0) < message_id) state.reads.set(user_id, message_id);
    } else if (e.type === "delete_message" && state.quotes.has(e.payload.id)) {
      state.quotes.set(e.payload.id, null);
    } else if (e.type === "update_message" && state.quotes.has(e.payload.id)) {
      state.quotes.set(e.payload.id, e.payload);
    } else if ((e.type === "create_chat" || e.type === "update_chat") && (e.payload.id === state.currentChatId || e.payload.type === "private")) {
      void refreshPresence(e.payload.participant_ids.filter((id) => id !== state.me?.id && !state.presence.has(id)));
    }
    queueRender();
  }
  function signOut(message) {
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
  function setStatus(s) {
    const [kind, text] = s === "open" ? ["open", "live"] : s === "connecting" ? ["connecting", "connecting…"] : s === "waiting" ? ["reconnecting", "reconnecting…"] : ["offline", "offline"];
    el.wsStatus.dataset.state = kind;
    el.wsStatus.textContent = text;
    if (s === "signed_out" && state.me) signOut("Your session has ended. Please log in again.");
  }
  function chatName(c) {
    if (c.title) return c.title;
    if (c.type === "private" && state.me) {
      const me = state.me.id;
      const other = c.participant_ids.find((id) => id !== me);
      if (other !== void 0) return userName(other);
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
    const type = el.newChatType.value === "private" ? "private" : "group";
    const title = el.newChatTitle.value.trim();
    el.createChat.disabled = true;
    try {
      const chat = await client.chats.create(title ? { type, participant_ids: ids, title } : { type, participant_ids: ids });
      clearError();
      el.newChatIds.value = "";
      el.newChatTitle.value = "";
      state.chats?.apply({ type: "create_chat", seq: 0, payload: chat });
      await openChat(chat.id);
    } catch (err) {
      showError(err);
    } finally {
      el.createChat.disabled = false;
    }
  }
  async function openChat(chatId) {
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
      const open = state.currentChatId === null ? void 0 : state.chats?.get(state.currentChatId);
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
  function closeChat() {
    clearInterval(state.bigChatTimer);
    state.window?.stop();
    state.window = null;
    state.currentChatId = null;
    state.typingUsers.clear();
    state.replyTo = null;
    queueRender();
  }
  function lastStoredId(entries) {
    let last = 0;
    for (const e of entries) if (e.kind === "message" && e.message.id > last) last = e.message.id;
    return last;
  }
  async function loadOlder() {
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
  async function sendMessage() {
    const win = state.window;
    const text = el.messageText.value;
    if (!win || text.trim() === "") return;
    const replying = state.replyTo;
    const replyTo = replying?.id;
    const mentions = mentionsIn(text);
    el.messageText.value = "";
    state.replyTo = null;
    renderReplyBar();
    try {
      await win.send(text, { ...replyTo === void 0 ? {} : { replyTo }, ...mentions.length ? { mentions } : {} });
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
  function scheduleMarkRead() {
    clearTimeout(state.readTimer);
    state.readTimer = setTimeout(() => void markRead(), 300);
  }
  async function markRead() {
    const chatId = state.currentChatId;
    const chat = chatId === null ? void 0 : state.chats?.get(chatId);
    const win = state.window;
    if (!chat || !win || !state.me || chatId === null) return;
    const me = state.me.id;
    let lastFromOthers = 0;
    for (const e of win.entries) {
      if (e.kind === "message" && e.message.sender_id !== me && e.message.id > lastFromOthers) lastFromOthers = e.message.id;
    }
    if (lastFromOthers === 0 || (chat.last_read_message_id ?? 0) >= lastFromOthers) return;
    try {
      await client.chats.markRead(chatId, lastStoredId(win.entries));
    } catch {
    }
  }
  function mentionsIn(text) {
    const chat = state.currentChatId === null ? void 0 : state.chats?.get(state.currentChatId);
    if (!chat) return [];
    const words = new Set([...text.matchAll(/@([^\s@,.!?;:]+)/gu)].map((m) => (m[1] ?? "").toLowerCase()));
    return chat.participant_ids.filter((id) => {
      const u = state.users.get(id);
      return id !== state.me?.id && u && (words.has(u.name.toLowerCase()) || words.has(u.name.split(/\s/)[0]?.toLowerCase() ?? ""));
    });
  }
  function startReply(messageId) {
    const m = state.window?.get(messageId);
    if (!m) return;
    state.replyTo = m;
    renderReplyBar();
    el.messageText.focus();
  }
  function quoteOf(chatId, id) {
    const held = state.window?.get(id);
    if (held) return held;
    const known = state.quotes.get(id);
    if (known !== void 0) return known;
    const oldest = state.window?.entries.find((e) => e.kind === "message");
    if (oldest?.kind === "message" && oldest.message.id < id) return null;
    state.quotes.set(id, "loading");
    client.messages.list(chatId, { after: id - 1, limit: 1 }).then((page) => {
      if (state.currentChatId !== chatId) return;
      const m = page.messages[0];
      state.quotes.set(id, m?.id === id ? m : null);
      queueRender();
    }).catch(() => void 0);
    return "loading";
  }
  async function toggleReaction(messageId, emoji) {
    const chatId = state.currentChatId;
    const m = state.window?.get(messageId);
    if (chatId === null || !m) return;
    state.pickerFor = null;
    queueRender();
    try {
      if (m.my_reactions?.includes(emoji)) await client.messages.unreact(chatId, messageId, emoji);
      else await client.messages.react(chatId, messageId, emoji);
    } catch (err) {
      showError(err);
    }
  }
  async function loadReads(chatId) {
    try {
      const { reads } = await client.chats.reads(chatId);
      if (state.currentChatId !== chatId) return;
      for (const r of reads) {
        const known = state.reads.get(r.user_id) ?? null;
        state.reads.set(r.user_id, Math.max(known ?? 0, r.last_read_message_id ?? 0) || null);
      }
      queueRender();
    } catch {
    }
  }
  function shownUsers() {
    const ids = /* @__PURE__ */ new Set();
    const me = state.me?.id;
    const open = state.currentChatId === null ? void 0 : state.chats?.get(state.currentChatId);
    for (const id of open?.participant_ids ?? []) ids.add(id);
    for (const c of state.chats?.list ?? []) {
      if (c.type === "private") for (const id of c.participant_ids) ids.add(id);
    }
    if (me !== void 0) ids.delete(me);
    return ids;
  }
  async function refreshPresence(ids) {
    for (let i = 0; i < ids.length; i += PRESENCE_BATCH) {
      try {
        const { presence } = await client.misc.presence(ids.slice(i, i + PRESENCE_BATCH));
        for (const p of presence) state.presence.set(p.user_id, p);
      } catch {
        return;
      }
    }
    if (ids.length > 0) queueRender();
  }
  function presenceText(p) {
    if (!p) return "";
    if (p.online) return "online";
    if (!p.last_seen_at) return "offline";
    const d = new Date(p.last_seen_at);
    const today = d.toDateString() === (/* @__PURE__ */ new Date()).toDateString();
    return `last seen ${today ? "" : d.toLocaleDateString() + " "}${formatTime(p.last_seen_at)}`;
  }
  function memberChip(id) {
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
  async function searchMessages() {
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
          const b = node("button", "search-hit");
          b.type = "button";
          b.dataset.chatId = String(m.chat_id);
          b.dataset.messageId = String(m.id);
          const chat = state.chats?.get(m.chat_id);
          b.append(
            node("span", "hit-meta", `${chat ? chatName(chat) : `chat #${m.chat_id}`} · ${userName(m.sender_id)} · ${formatTime(m.created_at)}`),
            node("span", "hit-text", m.text)
          );
          li.append(b);
          return li;
        })
      );
      if (res.messages.length === 0) el.searchResults.append(node("li", "hint", "No messages found."));
    } catch (err) {
      showError(err);
    }
  }
  async function jumpTo(chatId, messageId) {
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
    }, 2e3);
  }
  function onTyping(p) {
    if (p.chat_id !== state.currentChatId || !state.me || p.user_id === state.me.id) return;
    clearTimeout(state.typingUsers.get(p.user_id));
    state.typingUsers.set(
      p.user_id,
      setTimeout(() => {
        state.typingUsers.delete(p.user_id);
        renderTyping();
      }, TYPING_SHOW_MS)
    );
    renderTyping();
  }
  function onComposerInput() {
    if (state.currentChatId === null) return;
    const now = Date.now();
    if (now - state.lastTypingSentAt < TYPING_SEND_EVERY_MS) return;
    state.lastTypingSentAt = now;
    client.events.typing(state.currentChatId);
  }
  function userName(id) {
    const u = state.users.get(id);
    if (u) return u.name;
    if (u === void 0) {
      state.users.set(id, null);
      client.users.get(id).then((user) => {
        state.users.set(id, user);
        queueRender();
      }).catch(() => void 0);
    }
    return `user #${id}`;
  }
  async function searchUsers() {
    const q = el.userSearch.value.trim();
    try {
      const res = await client.users.list({ q, limit: 20 });
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
    renderSeenBy();
    renderReplyBar();
    renderTyping();
    updateComposer();
  }
  function renderChatList() {
    const chats = state.chats?.list ?? [];
    el.chatList.replaceChildren(
      ...chats.map((c) => {
        const li = node("li", c.id === state.currentChatId ? "active" : "");
        li.dataset.chatId = String(c.id);
        const b = node("button", c.is_active ? "" : "inactive");
        b.type = "button";
        b.dataset.chatId = String(c.id);
        b.title = c.last_message ? c.last_message.text.slice(0, 80) : "no messages yet";
        const name = node("span", "chat-name");
        const partner = c.type === "private" ? c.participant_ids.find((id) => id !== state.me?.id) : void 0;
        if (partner !== void 0) {
          const dot = node("span", "dot");
          const p = state.presence.get(partner);
          if (p) dot.dataset.online = String(p.online);
          dot.title = presenceText(p);
          name.append(dot);
        }
        name.append(chatName(c));
        b.append(name);
        if (c.id !== state.currentChatId) {
          if ((c.unread_mentions ?? 0) > 0) {
            const at = node("span", "mention-badge", "@");
            at.title = `${c.unread_mentions} unread mention(s)`;
            b.append(at);
          }
          if (c.unread_count > 0) b.append(node("span", "unread", String(c.unread_count)));
        }
        li.append(b);
        return li;
      })
    );
    el.chatListEmpty.hidden = chats.length > 0;
    const total = state.chats?.totalUnread ?? 0;
    const mentions = state.chats?.totalMentions ?? 0;
    el.unreadTotal.hidden = total === 0;
    el.unreadTotal.textContent = mentions > 0 ? `${total} unread · @${mentions}` : `${total} unread`;
  }
  function renderHeader() {
    const chat = state.currentChatId === null ? void 0 : state.chats?.get(state.currentChatId);
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
  function renderMessages() {
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
      })
    );
    el.loadOlder.hidden = !state.window?.hasOlder;
  }
  function renderMessage(m, me) {
    const mine = m.sender_id === me;
    const li = node("li", "message");
    li.classList.toggle("mine", mine);
    li.classList.toggle("mentions-me", me !== void 0 && Boolean(m.mentions?.includes(me)));
    li.classList.toggle("flash", m.id === state.flashId);
    li.dataset.messageId = String(m.id);
    li.dataset.senderId = String(m.sender_id);
    if (m.reply_to != null) li.append(renderQuote(m.chat_id, m.reply_to));
    const meta = node("div", "meta");
    meta.append(node("span", "sender", mine ? "you" : userName(m.sender_id)), " · ");
    const time = node("time", "", formatTime(m.created_at));
    time.dateTime = m.created_at;
    meta.append(time);
    if (m.edited_at) meta.append(node("span", "edited", " (edited)"));
    li.append(meta, node("div", "text", m.text));
    const bar = node("div", "reactions");
    for (const r of m.reactions ?? []) {
      const b = node("button", "reaction", `${r.emoji} ${r.count}`);
      b.type = "button";
      b.dataset.emoji = r.emoji;
      b.classList.toggle("mine", Boolean(m.my_reactions?.includes(r.emoji)));
      b.title = b.classList.contains("mine") ? "Take back your reaction" : "React with this too";
      bar.append(b);
    }
    const add = node("button", "react-add", "☺+");
    add.type = "button";
    add.title = "Add a reaction";
    const reply = node("button", "reply-button", "Reply");
    reply.type = "button";
    bar.append(add, reply);
    li.append(bar);
    if (state.pickerFor === m.id) {
      const picker = node("div", "picker");
      for (const emoji of PICKER_EMOJI) {
        const b = node("button", "pick", emoji);
        b.type = "button";
        b.dataset.emoji = emoji;
        picker.append(b);
      }
      li.append(picker);
    }
    return li;
  }
  function renderQuote(chatId, id) {
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
  function renderSeenBy() {
    const chat = state.currentChatId === null ? void 0 : state.chats?.get(state.currentChatId);
    let last;
    for (const e of state.window?.entries ?? []) if (e.kind === "message") last = e.message;
    const readers = !chat || !last ? [] : chat.participant_ids.filter((id) => id !== last.sender_id && (state.reads.get(id) ?? 0) >= last.id);
    el.seenBy.hidden = readers.length === 0;
    el.seenBy.textContent = readers.length ? `Seen by ${readers.map((id) => id === state.me?.id ? "you" : userName(id)).join(", ")}` : "";
    if (last) el.seenBy.dataset.messageId = String(last.id);
  }
  function renderReplyBar() {
    const m = state.replyTo;
    el.replyBar.hidden = !m;
    if (!m) return;
    el.replyQuote.textContent = `Replying to ${m.sender_id === state.me?.id ? "yourself" : userName(m.sender_id)}: ${m.text.slice(0, 80)}`;
  }
  function renderTyping() {
    const names = [...state.typingUsers.keys()].map(userName);
    el.typing.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
  }
  function updateComposer() {
    const chat = state.currentChatId === null ? void 0 : state.chats?.get(state.currentChatId);
    const usable = Boolean(chat?.is_active);
    el.messageText.disabled = !usable;
    el.send.disabled = !usable;
    el.messageText.placeholder = !chat ? "Pick a chat first" : chat.is_active ? "Write a message (@name mentions a member)" : "This chat is inactive";
  }
  function isAtBottom() {
    return el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 40;
  }
  function scrollToBottom() {
    el.messages.scrollTop = el.messages.scrollHeight;
  }
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
  el.authForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void authAction("login");
  });
  el.register.addEventListener("click", () => void authAction("register"));
  el.logout.addEventListener("click", () => {
    client.auth.logout().catch(() => void 0);
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
    const b = ev.target.closest("button[data-chat-id]");
    if (b) openChat(Number(b.dataset.chatId)).catch(showError);
  });
  el.loadOlder.addEventListener("click", () => void loadOlder());
  el.messages.addEventListener("click", (ev) => {
    const target = ev.target.closest("button, blockquote");
    const id = Number(target?.closest("li[data-message-id]")?.dataset.messageId);
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
    const b = ev.target.closest("button[data-message-id]");
    if (b) jumpTo(Number(b.dataset.chatId), Number(b.dataset.messageId)).catch(showError);
  });
  el.messageForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void sendMessage();
  });
  el.messageText.addEventListener("input", onComposerInput);
  void client.ready().then(() => {
    if (!client.auth.signedIn) {
      setStatus("idle");
      return;
    }
    startSession().catch((err) => {
      if (err instanceof RtchatError && err.status === 401) signOut("Please log in again.");
      else showError(err);
    });
  });
})();
