// @rtchat/client: a typed client for rtchat. See README.md for the quick start.
export { RtchatClient, EventsApi, type ClientOptions } from "./client.js";
export { AuthApi, ChatsApi, MessagesApi, MiscApi, UsersApi, ENDPOINTS, type CallOptions, type SearchQuery } from "./api.js";
export { RtchatError, NETWORK_ERROR_STATUS } from "./errors.js";
export { MemoryTokenStore, WebStorageTokenStore, type StoredTokens, type TokenStore } from "./session.js";
export {
  MemoryCursorStore,
  WebStorageCursorStore,
  type CursorStore,
  type EventHandler,
  type ResyncInfo,
  type StreamProblem,
  type StreamState,
  type StreamStats,
  type SubscribeOptions,
  type Subscription,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./stream.js";
export type { PendingSend, SendOptions, SendRetry } from "./sends.js";
export { ChatListState, MessageWindow, type WindowEntry } from "./state.js";
export type { Backoff, KeyValueStorage } from "./util.js";
export type {
  Chat,
  ChatEvent,
  ChatEventType,
  ChatList,
  ChatType,
  ChatView,
  CreateChatEvent,
  CreateChatRequest,
  DeleteChatEvent,
  DeleteMessageEvent,
  EditMessageRequest,
  FieldError,
  Id,
  Message,
  MessageList,
  MessageV2,
  NewMessageEvent,
  Presence,
  Reaction,
  ReactionEvent,
  ReadCursor,
  ReadEvent,
  ReadyInfo,
  SendMessageRequest,
  ServerErrorFrame,
  Timestamp,
  TokenPair,
  Typing,
  UnknownEvent,
  UnreadTotals,
  UpdateChatEvent,
  UpdateChatRequest,
  UpdateMessageEvent,
  User,
} from "./types.js";
