// The objects and frames of the rtchat contract as the client hands them out: the spec's
// types (generated from openapi.yaml), v2 included, plus the few docs/API.md shapes the spec
// does not name. test/types.test.ts proves these agree with the spec.
import type * as Spec from "./generated/openapi.js";

export type Id = number;
export type Timestamp = string;

export type User = Spec.User;
export type TokenPair = Spec.TokenPair;
export type ChatType = Spec.ChatType;
export type FieldError = Spec.FieldError;

/** An emoji on a message and how many members reacted with it (v2). */
export type Reaction = Spec.ReactionCount;

/** A message. v2: `reply_to` (a message of the same chat, or null), `mentions` (ascending),
 * `reactions` (in the order each emoji was first added) and, only in `GET` responses, the
 * caller's own `my_reactions`. */
export type Message = Spec.Message;

/** The v2 fields of a message. */
export type MessageV2 = Pick<Message, "reply_to" | "mentions" | "reactions" | "my_reactions">;

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

/** v2 adds `reply_to` (a message of the same chat) and `mentions` (at most 50 members). */
export type SendMessageRequest = Spec.SendMessageRequest;

/** At least one of `text` and `mentions` (v2); an absent field is unchanged. */
export type EditMessageRequest = Spec.EditMessageRequest;

/** v2 presence of a user: `last_seen_at` is when their last socket closed (null if never
 * connected, and while online). */
export type Presence = Spec.Presence;

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
/** v2: a message's set of reactions changed; `count` is that emoji's count after it. */
export type ReactionEvent = Spec.ReactionEvent;

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
