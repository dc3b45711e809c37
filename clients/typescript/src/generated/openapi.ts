// Generated from openapi.yaml by scripts/gen-openapi-types.mjs: do not edit by hand.
// `npm run gen:types` rewrites it; `npm run check:types-drift` (run by CI) fails when it is stale.
/* eslint-disable */

export type Id = number;

export type Timestamp = string;

export type Seq = number;

export type Error = {
  detail: string;
  code: string;
};

export type ValidationError = Error & {
  code?: "validation_error";
  errors: FieldError[];
};

export type TooManyReactionsError = Error & {
  code?: "too_many_reactions";
  errors: FieldError[];
};

export type ResyncRequiredError = Error & {
  code?: "resync_required";
  seq: number;
};

export type FieldError = {
  field: string;
  message: string;
};

export type User = {
  id: Id;
  email: string;
  name: string;
  created_at: Timestamp;
};

export type UserList = {
  users: User[];
};

export type RegisterRequest = {
  email: string;
  name: string;
  password: string;
};

export type LoginRequest = {
  email: string;
  password: string;
};

export type LoginForm = {
  grant_type?: "password";
  username: string;
  password: string;
  scope?: string;
  client_id?: string;
  client_secret?: string;
};

export type TokenPair = {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
  refresh_token: string;
};

export type RefreshRequest = {
  refresh_token: string;
};

export type LogoutRequest = {
  all?: boolean;
};

export type ChatType = "private" | "group";

export type Chat = {
  id: Id;
  type: ChatType;
  title: string | null;
  creator_id: Id;
  is_active: boolean;
  participant_ids: Id[];
  created_at: Timestamp;
  updated_at: Timestamp;
};

export type ChatView = Chat & {
  last_message: Message | null;
  unread_count: number;
  unread_mentions: number;
  last_read_message_id: number | null;
};

export type ChatList = {
  chats: ChatView[];
  has_more: boolean;
};

export type ChatTitle = string | null;

export type CreateChatRequest = {
  type: ChatType;
  title?: ChatTitle;
  participant_ids: Id[];
};

export type UpdateChatRequest = {
  title?: ChatTitle;
  is_active?: boolean;
};

export type AddMembersRequest = {
  user_ids: Id[];
};

export type ReadRequest = {
  message_id: Id;
};

export type Message = {
  id: Id;
  chat_id: Id;
  sender_id: Id;
  text: string;
  created_at: Timestamp;
  edited_at: Timestamp | null;
  client_id: string | null;
  reply_to: number | null;
  mentions: Id[];
  reactions: ReactionCount[];
  my_reactions?: string[];
};

export type ReactionCount = {
  emoji: string;
  count: number;
};

export type MessageList = {
  messages: Message[];
  has_more: boolean;
};

export type SearchResults = {
  messages: Message[];
  has_more: boolean;
};

export type ReadCursor = {
  user_id: Id;
  last_read_message_id: number | null;
};

export type ReadList = {
  reads: ReadCursor[];
};

export type UnreadTotals = {
  messages: number;
  chats: number;
  mentions: number;
};

export type SendMessageRequest = {
  text: string;
  client_id?: string | null;
  reply_to?: number | null;
  mentions?: Mentions;
};

export type Mentions = Id[];

export type EditMessageRequest = {
  text?: string;
  mentions?: Mentions;
};

export type DeletedChat = {
  id: Id;
};

export type DeletedMessage = {
  id: Id;
  chat_id: Id;
};

export type ReactionChange = {
  chat_id: Id;
  message_id: Id;
  user_id: Id;
  emoji: string;
  added: boolean;
  count: number;
};

export type ReadReceipt = {
  chat_id: Id;
  user_id: Id;
  message_id: Id;
};

export type EventFrame = CreateChatEvent | UpdateChatEvent | DeleteChatEvent | NewMessageEvent | UpdateMessageEvent | DeleteMessageEvent | ReadEvent | ReactionEvent;

export type EventList = {
  events: EventFrame[];
  has_more: boolean;
};

export type CreateChatEvent = {
  type: "create_chat";
  seq: Seq;
  payload: Chat;
};

export type UpdateChatEvent = {
  type: "update_chat";
  seq: Seq;
  payload: Chat;
};

export type DeleteChatEvent = {
  type: "delete_chat";
  seq: Seq;
  payload: DeletedChat;
};

export type NewMessageEvent = {
  type: "new_message";
  seq: Seq;
  payload: Message;
};

export type UpdateMessageEvent = {
  type: "update_message";
  seq: Seq;
  payload: Message;
};

export type DeleteMessageEvent = {
  type: "delete_message";
  seq: Seq;
  payload: DeletedMessage;
};

export type ReadEvent = {
  type: "read";
  seq: Seq;
  payload: ReadReceipt;
};

export type ReactionEvent = {
  type: "reaction";
  seq: Seq;
  payload: ReactionChange;
};

export type ServerFrame = CreateChatEvent | UpdateChatEvent | DeleteChatEvent | NewMessageEvent | UpdateMessageEvent | DeleteMessageEvent | ReadEvent | ReactionEvent | ReadyFrame | TypingFrame | PresenceFrame | PongFrame | ErrorFrame | ResyncRequiredFrame;

export type ReadyFrame = {
  type: "ready";
  payload: {
    user_id: Id;
    seq: number;
    heartbeat_interval_ms: number;
  };
};

export type TypingFrame = {
  type: "typing";
  payload: {
    chat_id: Id;
    user_id: Id;
  };
};

export type PresenceFrame = {
  type: "presence";
  payload: Presence;
};

export type Presence = {
  user_id: Id;
  online: boolean;
  last_seen_at: Timestamp | null;
};

export type PresenceList = {
  presence: Presence[];
};

export type PongFrame = {
  type: "pong";
};

export type ErrorFrame = {
  type: "error";
  payload: {
    code: string;
    detail: string;
  };
};

export type ResyncRequiredFrame = {
  type: "resync_required";
  payload: {
    seq: number;
  };
};

export type ClientFrame = PingFrame | TypingRequestFrame;

export type PingFrame = {
  type: "ping";
};

export type TypingRequestFrame = {
  type: "typing";
  payload: {
    chat_id: Id;
  };
};

export type HealthStatus = {
  status: "ok";
};

/** Every operation of the spec: its method and path template. */
export interface Operations {
  register_user: { method: "POST"; path: "/auth/register" };
  login_user: { method: "POST"; path: "/auth/login" };
  refresh_tokens: { method: "POST"; path: "/auth/refresh" };
  logout_user: { method: "POST"; path: "/auth/logout" };
  get_current_user: { method: "GET"; path: "/auth/me" };
  list_users: { method: "GET"; path: "/users" };
  get_user: { method: "GET"; path: "/users/{user_id}" };
  list_chats: { method: "GET"; path: "/chats" };
  create_chat: { method: "POST"; path: "/chats" };
  get_chat: { method: "GET"; path: "/chats/{chat_id}" };
  delete_chat: { method: "DELETE"; path: "/chats/{chat_id}" };
  update_chat: { method: "PATCH"; path: "/chats/{chat_id}" };
  add_chat_members: { method: "POST"; path: "/chats/{chat_id}/members" };
  remove_chat_member: { method: "DELETE"; path: "/chats/{chat_id}/members/{user_id}" };
  mark_chat_read: { method: "POST"; path: "/chats/{chat_id}/read" };
  list_chat_reads: { method: "GET"; path: "/chats/{chat_id}/reads" };
  get_unread_totals: { method: "GET"; path: "/unread" };
  search_messages: { method: "GET"; path: "/search/messages" };
  list_messages: { method: "GET"; path: "/chats/{chat_id}/messages" };
  send_message: { method: "POST"; path: "/chats/{chat_id}/messages" };
  delete_message: { method: "DELETE"; path: "/chats/{chat_id}/messages/{message_id}" };
  edit_message: { method: "PATCH"; path: "/chats/{chat_id}/messages/{message_id}" };
  add_reaction: { method: "PUT"; path: "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}" };
  remove_reaction: { method: "DELETE"; path: "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}" };
  list_events: { method: "GET"; path: "/events" };
  get_presence: { method: "GET"; path: "/presence" };
  connect_notifications: { method: "GET"; path: "/ws/notif" };
  get_health: { method: "GET"; path: "/healthz" };
  get_readiness: { method: "GET"; path: "/readyz" };
  get_metrics: { method: "GET"; path: "/metrics" };
  get_docs: { method: "GET"; path: "/docs" };
  get_docs_asset: { method: "GET"; path: "/docs/{file}" };
  get_openapi_spec: { method: "GET"; path: "/openapi.yaml" };
  get_index: { method: "GET"; path: "/" };
  get_static_asset: { method: "GET"; path: "/static/{file}" };
}

export type OperationId = keyof Operations;
