// The objects and frames of the rtchat contract as the client hands them out: the spec's
// types (generated from openapi.yaml) plus the v2 additions of docs/API.md, which are optional
// until the server sends them. test/types.test.ts proves these agree with the spec.
import type * as Spec from "./generated/openapi.js";

export type Id = number;
export type Timestamp = string;

export type User = Spec.User;
export type TokenPair = Spec.TokenPair;
export type ChatType = Spec.ChatType;
export type FieldError = Spec.FieldError;

/** A reaction summary on a message (v2). */
export interface Reaction {
  emoji: string;
  count: number;
}

/** Message fields added by v2; absent on a v1 server. */
export interface MessageV2 {
  /** The message this one replies to, in the same chat. */
  reply_to?: Id | null;
  /** Mentioned user ids, ascending. */
  mentions?: Id[];
  /** In the order each emoji was first added. */
  reactions?: Reaction[];
  /** The caller's own emoji on it (only in `GET` responses). */
  my_reactions?: string[];
}

export type Message = Spec.Message & MessageV2;

/** A chat as carried by `create_chat` and `update_chat` events. */
export type Chat = Spec.Chat;

/** A chat as the caller sees it in `GET` responses; `unread_mentions` (v2) counts unread
 * messages by others that mention the caller. */
export type ChatView = Omit<Spec.ChatView, "last_message"> & {
  last_message: Message | null;
};

export interface ChatList {
  chats: ChatView[];
  has_more: boolean;
}

export interface MessageList {
  messages: Message[];
  has_more: boolean;
}

export type CreateChatRequest = Spec.CreateChatRequest;
export type UpdateChatRequest = Spec.UpdateChatRequest;

export type SendMessageRequest = Spec.SendMessageRequest & {
  /** v2: a message of the same chat this one replies to. */
  reply_to?: Id | null;
  /** v2: at most 50 member ids. */
  mentions?: Id[];
};

/** v1 takes `text`; v2 makes it optional when `mentions` is given. */
export interface EditMessageRequest {
  text?: string;
  mentions?: Id[];
}

/** v2 presence of a user. */
export interface Presence {
  user_id: Id;
  online: boolean;
  /** When the user's last socket closed; null if never connected, and while online. */
  last_seen_at: Timestamp | null;
}

/** v2 `GET /chats/{id}/reads`: one member's cursor. */
export type ReadCursor = Spec.ReadCursor;

/** v2 `GET /unread`. */
export type UnreadTotals = Spec.UnreadTotals;

// ---------------------------------------------------------------------------------------
// durable events
// ---------------------------------------------------------------------------------------

export interface CreateChatEvent {
  type: "create_chat";
  seq: number;
  payload: Chat;
}
export interface UpdateChatEvent {
  type: "update_chat";
  seq: number;
  payload: Chat;
}
export interface DeleteChatEvent {
  type: "delete_chat";
  seq: number;
  payload: { id: Id };
}
export interface NewMessageEvent {
  type: "new_message";
  seq: number;
  payload: Message;
}
export interface UpdateMessageEvent {
  type: "update_message";
  seq: number;
  payload: Message;
}
export interface DeleteMessageEvent {
  type: "delete_message";
  seq: number;
  payload: { id: Id; chat_id: Id };
}
export interface ReadEvent {
  type: "read";
  seq: number;
  payload: { chat_id: Id; user_id: Id; message_id: Id };
}
/** v2: a message's set of reactions changed. */
export interface ReactionEvent {
  type: "reaction";
  seq: number;
  payload: {
    chat_id: Id;
    message_id: Id;
    user_id: Id;
    emoji: string;
    added: boolean;
    /** That emoji's count after the change. */
    count: number;
  };
}

/** Every durable event type this client knows. */
export type ChatEvent =
  | CreateChatEvent
  | UpdateChatEvent
  | DeleteChatEvent
  | NewMessageEvent
  | UpdateMessageEvent
  | DeleteMessageEvent
  | ReadEvent
  | ReactionEvent;

export type ChatEventType = ChatEvent["type"];

/** A durable event of a type this client version does not know (a newer server). */
export interface UnknownEvent {
  type: string;
  seq: number;
  payload: unknown;
}

// ---------------------------------------------------------------------------------------
// ephemeral frames
// ---------------------------------------------------------------------------------------

export type ReadyInfo = Spec.ReadyFrame["payload"];
export type Typing = Spec.TypingFrame["payload"];
export type ServerErrorFrame = Spec.ErrorFrame["payload"];
