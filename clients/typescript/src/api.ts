// The REST contract, one method per endpoint, grouped by resource. The endpoint table below
// must equal openapi.yaml's operations (tsc checks it against the generated types), so an
// endpoint added to or changed in the spec fails the build until the client follows.
import type { OperationId, Operations } from "./generated/openapi.js";
import { Http, type Method, type QueryValue } from "./http.js";
import type { PendingSend, Sender, SendOptions } from "./sends.js";
import type { Session } from "./session.js";
import type {
  ChatEvent,
  ChatList,
  ChatView,
  CreateChatRequest,
  EditMessageRequest,
  Id,
  Message,
  MessageList,
  Presence,
  ReadCursor,
  TokenPair,
  UnreadTotals,
  UpdateChatRequest,
  User,
} from "./types.js";

/** Every operation of openapi.yaml: method and path. */
export const ENDPOINTS = {
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
  get_static_asset: { method: "GET", path: "/static/{file}" },
} as const satisfies { [K in OperationId]: Operations[K] };

type Endpoint = { method: Method; path: string };

/** v2 message search: `q` is 1..200 characters; `limit` 1..100 (default 20). */
export interface SearchQuery {
  q: string;
  chatId?: Id;
  before?: Id;
  limit?: number;
}

/** Per-call options every method takes. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** Shared by the groups: one call of one endpoint. */
class Caller {
  constructor(protected readonly http: Http) {}
  protected call<T>(
    endpoint: Endpoint,
    params: Record<string, string | number>,
    init: { body?: unknown; query?: Record<string, QueryValue>; auth?: boolean; accept?: "json" | "text" } & CallOptions = {},
  ): Promise<T> {
    return this.http.request<T>(endpoint.method, Http.fill(endpoint.path, params), init);
  }
}

export class AuthApi extends Caller {
  constructor(
    http: Http,
    private readonly session: Session,
  ) {
    super(http);
  }

  /** `POST /auth/register`: creates the account (does not log in). */
  register(body: { email: string; name: string; password: string }, o: CallOptions = {}): Promise<User> {
    return this.call(ENDPOINTS.register_user, {}, { body, auth: false, ...o });
  }

  /** `POST /auth/login`: logs in and keeps the tokens (refreshed from now on). */
  async login(email: string, password: string, o: CallOptions = {}): Promise<TokenPair> {
    const pair = await this.call<TokenPair>(ENDPOINTS.login_user, {}, { body: { email, password }, auth: false, ...o });
    await this.session.setPair(pair);
    return pair;
  }

  /** `POST /auth/refresh` now (it also happens by itself before expiry). Null when the
   * session ended. */
  refresh(): Promise<string | null> {
    return this.session.refresh();
  }

  /** `POST /auth/logout`: ends this session (`all`: every session of the user) and forgets
   * the tokens; the stream stops. The tokens are forgotten even if the server is unreachable. */
  async logout(options: { all?: boolean } & CallOptions = {}): Promise<void> {
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
  me(o: CallOptions = {}): Promise<User> {
    return this.call(ENDPOINTS.get_current_user, {}, o);
  }

  /** The signed-in user's id (from the token), if any. */
  get userId(): Id | undefined {
    return this.session.userId;
  }

  get signedIn(): boolean {
    return this.session.current !== null;
  }
}

export class UsersApi extends Caller {
  /** `GET /users?q=&limit=` */
  list(query: { q?: string; limit?: number } = {}, o: CallOptions = {}): Promise<{ users: User[] }> {
    return this.call(ENDPOINTS.list_users, {}, { query, ...o });
  }
  /** `GET /users/{id}` */
  get(userId: Id, o: CallOptions = {}): Promise<User> {
    return this.call(ENDPOINTS.get_user, { user_id: userId }, o);
  }
}

export class ChatsApi extends Caller {
  constructor(
    http: Http,
    private readonly session: Session,
  ) {
    super(http);
  }

  /** `POST /chats` (an existing private pair answers that chat). */
  create(body: CreateChatRequest, o: CallOptions = {}): Promise<ChatView> {
    return this.call(ENDPOINTS.create_chat, {}, { body, ...o });
  }
  /** `GET /chats?limit=&before=`: one page, most recent activity first. */
  list(query: { limit?: number; before?: Id } = {}, o: CallOptions = {}): Promise<ChatList> {
    return this.call(ENDPOINTS.list_chats, {}, { query, ...o });
  }
  /** Every chat of the caller, page by page. */
  async listAll(o: CallOptions = {}): Promise<ChatView[]> {
    const all: ChatView[] = [];
    let before: Id | undefined;
    for (;;) {
      const page = await this.list(before === undefined ? { limit: 100 } : { limit: 100, before }, o);
      all.push(...page.chats);
      const last = page.chats[page.chats.length - 1];
      if (!page.has_more || !last) return all;
      before = last.id;
    }
  }
  /** `GET /chats/{id}` */
  get(chatId: Id, o: CallOptions = {}): Promise<ChatView> {
    return this.call(ENDPOINTS.get_chat, { chat_id: chatId }, o);
  }
  /** `PATCH /chats/{id}` (creator) */
  update(chatId: Id, body: UpdateChatRequest, o: CallOptions = {}): Promise<ChatView> {
    return this.call(ENDPOINTS.update_chat, { chat_id: chatId }, { body, ...o });
  }
  /** `DELETE /chats/{id}` (creator) */
  delete(chatId: Id, o: CallOptions = {}): Promise<void> {
    return this.call(ENDPOINTS.delete_chat, { chat_id: chatId }, o);
  }
  /** `POST /chats/{id}/members` (creator of a group) */
  addMembers(chatId: Id, userIds: Id[], o: CallOptions = {}): Promise<ChatView> {
    return this.call(ENDPOINTS.add_chat_members, { chat_id: chatId }, { body: { user_ids: userIds }, ...o });
  }
  /** `DELETE /chats/{id}/members/{user_id}` (that user, or the creator) */
  removeMember(chatId: Id, userId: Id, o: CallOptions = {}): Promise<void> {
    return this.call(ENDPOINTS.remove_chat_member, { chat_id: chatId, user_id: userId }, o);
  }
  /** Leaves a chat. */
  leave(chatId: Id, o: CallOptions = {}): Promise<void> {
    const me = this.session.userId;
    if (me === undefined) return Promise.reject(new TypeError("not signed in"));
    return this.removeMember(chatId, me, o);
  }
  /** `POST /chats/{id}/read`: the read cursor only moves forward. */
  markRead(chatId: Id, messageId: Id, o: CallOptions = {}): Promise<void> {
    return this.call(ENDPOINTS.mark_chat_read, { chat_id: chatId }, { body: { message_id: messageId }, ...o });
  }
  /** v2 `GET /chats/{id}/reads` */
  reads(chatId: Id, o: CallOptions = {}): Promise<{ reads: ReadCursor[] }> {
    return this.call(ENDPOINTS.list_chat_reads, { chat_id: chatId }, o);
  }
}

export class MessagesApi extends Caller {
  constructor(
    http: Http,
    private readonly sender: Sender,
  ) {
    super(http);
  }

  /** `POST /chats/{id}/messages`, made reliable: retried with the same `client_id` after a
   * network error or a 5xx, and resolved once with the stored message (see sends.ts). */
  send(chatId: Id, text: string, options: SendOptions = {}): Promise<Message> {
    return this.sender.send(chatId, text, options);
  }
  /** Sends in flight (for optimistic UI), optionally of one chat. */
  pending(chatId?: Id): PendingSend[] {
    return this.sender.list(chatId);
  }
  /** Called with the pending sends whenever they change; returns an unsubscribe. */
  onPending(listener: (pending: readonly PendingSend[]) => void): () => void {
    return this.sender.changes.add(listener);
  }
  /** `GET /chats/{id}/messages?before=&after=&limit=`: ascending by id; no cursor = latest. */
  list(chatId: Id, query: { before?: Id; after?: Id; limit?: number } = {}, o: CallOptions = {}): Promise<MessageList> {
    return this.call(ENDPOINTS.list_messages, { chat_id: chatId }, { query, ...o });
  }
  /** `PATCH /chats/{id}/messages/{message_id}` (sender); a string edits the text. */
  edit(chatId: Id, messageId: Id, body: string | EditMessageRequest, o: CallOptions = {}): Promise<Message> {
    return this.call(
      ENDPOINTS.edit_message,
      { chat_id: chatId, message_id: messageId },
      { body: typeof body === "string" ? { text: body } : body, ...o },
    );
  }
  /** `DELETE /chats/{id}/messages/{message_id}` (sender or chat creator) */
  delete(chatId: Id, messageId: Id, o: CallOptions = {}): Promise<void> {
    return this.call(ENDPOINTS.delete_message, { chat_id: chatId, message_id: messageId }, o);
  }
  /** v2 `PUT .../reactions/{emoji}`: idempotent; the emoji is percent-encoded here. */
  react(chatId: Id, messageId: Id, emoji: string, o: CallOptions = {}): Promise<void> {
    return this.call(ENDPOINTS.add_reaction, { chat_id: chatId, message_id: messageId, emoji }, o);
  }
  /** v2 `DELETE .../reactions/{emoji}` */
  unreact(chatId: Id, messageId: Id, emoji: string, o: CallOptions = {}): Promise<void> {
    return this.call(ENDPOINTS.remove_reaction, { chat_id: chatId, message_id: messageId, emoji }, o);
  }
  /** v2 `GET /search/messages?q=&chat_id=&before=&limit=`: messages of the caller's chats
   * (or of `chatId`) with every word of `q` (the last one as a prefix), **newest first**;
   * page back with `before` = the last id of a page. */
  search(query: SearchQuery, o: CallOptions = {}): Promise<MessageList> {
    const { chatId, ...rest } = query;
    return this.call(ENDPOINTS.search_messages, {}, { query: { ...rest, chat_id: chatId }, ...o });
  }
}

export class EventsRestApi extends Caller {
  /** `GET /events?since=&limit=`: the log after `since`, without a socket. A `since` the log
   * no longer covers is `410 resync_required`. */
  list(query: { since?: number; limit?: number } = {}, o: CallOptions = {}): Promise<{ events: ChatEvent[]; has_more: boolean }> {
    return this.call(ENDPOINTS.list_events, {}, { query, ...o });
  }
}

export class MiscApi extends Caller {
  /** v2 `GET /unread`: totals over the caller's active chats. */
  unread(o: CallOptions = {}): Promise<UnreadTotals> {
    return this.call(ENDPOINTS.get_unread_totals, {}, o);
  }
  /** v2 `GET /presence?user_ids=`: 1..100 ids, answered in the order asked. */
  presence(userIds: Id[], o: CallOptions = {}): Promise<{ presence: Presence[] }> {
    return this.call(ENDPOINTS.get_presence, {}, { query: { user_ids: userIds }, ...o });
  }
  /** `GET /healthz` */
  health(o: CallOptions = {}): Promise<{ status: "ok" }> {
    return this.call(ENDPOINTS.get_health, {}, { auth: false, ...o });
  }
  /** `GET /readyz` (503 `not_ready` throws) */
  readiness(o: CallOptions = {}): Promise<{ status: "ok" }> {
    return this.call(ENDPOINTS.get_readiness, {}, { auth: false, ...o });
  }
  /** `GET /metrics`: Prometheus text. */
  metrics(o: CallOptions = {}): Promise<string> {
    return this.call(ENDPOINTS.get_metrics, {}, { auth: false, accept: "text", ...o });
  }
  /** `GET /openapi.yaml` */
  openapi(o: CallOptions = {}): Promise<string> {
    return this.call(ENDPOINTS.get_openapi_spec, {}, { auth: false, accept: "text", ...o });
  }
}
