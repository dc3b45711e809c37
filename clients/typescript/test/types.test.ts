// The client's types agree with openapi.yaml. At compile time (tsc runs before the tests):
// each object and frame type is mutually assignable with the type generated from the spec,
// v2's included, and the endpoint table equals the spec's operations (see ENDPOINTS in src/api.ts). At run time: the generated file is what
// the current openapi.yaml gives.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import type * as Spec from "../src/generated/openapi.js";
import { ENDPOINTS } from "../src/index.js";
import type {
  Chat,
  ChatEvent,
  ChatList,
  ChatView,
  CreateChatEvent,
  CreateChatRequest,
  DeleteChatEvent,
  DeleteMessageEvent,
  EditMessageRequest,
  Message,
  MessageList,
  NewMessageEvent,
  Presence,
  ReactionEvent,
  ReadCursor,
  ReadEvent,
  ReadyInfo,
  SendMessageRequest,
  TokenPair,
  Typing,
  UpdateChatEvent,
  UpdateChatRequest,
  UnreadTotals,
  UpdateMessageEvent,
  User,
} from "../src/index.js";

/** true when A and B are assignable to each other. */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function assertTrue<T extends true>(): T | undefined {
  return undefined;
}

assertTrue<Mutual<User, Spec.User>>();
assertTrue<Mutual<TokenPair, Spec.TokenPair>>();
assertTrue<Mutual<Chat, Spec.Chat>>();
assertTrue<Mutual<ChatView, Spec.ChatView>>();
assertTrue<Mutual<ChatList, Spec.ChatList>>();
assertTrue<Mutual<Message, Spec.Message>>();
assertTrue<Mutual<MessageList, Spec.MessageList>>();
assertTrue<Mutual<CreateChatRequest, Spec.CreateChatRequest>>();
assertTrue<Mutual<UpdateChatRequest, Spec.UpdateChatRequest>>();
assertTrue<Mutual<SendMessageRequest, Spec.SendMessageRequest>>();
assertTrue<Mutual<CreateChatEvent, Spec.CreateChatEvent>>();
assertTrue<Mutual<UpdateChatEvent, Spec.UpdateChatEvent>>();
assertTrue<Mutual<DeleteChatEvent, Spec.DeleteChatEvent>>();
assertTrue<Mutual<NewMessageEvent, Spec.NewMessageEvent>>();
assertTrue<Mutual<UpdateMessageEvent, Spec.UpdateMessageEvent>>();
assertTrue<Mutual<DeleteMessageEvent, Spec.DeleteMessageEvent>>();
assertTrue<Mutual<ReadEvent, Spec.ReadEvent>>();
/** The client knows every durable event of the spec, and no other. */
assertTrue<Mutual<ChatEvent, Spec.EventFrame>>();
assertTrue<Mutual<ReactionEvent, Spec.ReactionEvent>>();
assertTrue<Mutual<EditMessageRequest, Spec.EditMessageRequest>>();
assertTrue<Mutual<ReadCursor, Spec.ReadCursor>>();
assertTrue<Mutual<{ reads: ReadCursor[] }, Spec.ReadList>>();
assertTrue<Mutual<UnreadTotals, Spec.UnreadTotals>>();
assertTrue<Mutual<MessageList, Spec.SearchResults>>();
assertTrue<Mutual<Presence, Spec.Presence>>();
assertTrue<Mutual<{ presence: Presence[] }, Spec.PresenceList>>();
assertTrue<Mutual<ReadyInfo, Spec.ReadyFrame["payload"]>>();
assertTrue<Mutual<Typing, Spec.TypingFrame["payload"]>>();
// The check is not vacuous: different shapes are told apart.
// @ts-expect-error a Message is not a Chat
assertTrue<Mutual<Message, Spec.Chat>>();
// @ts-expect-error a missing field is noticed
assertTrue<Mutual<Omit<Message, "client_id">, Spec.Message>>();

const here = dirname(fileURLToPath(import.meta.url));
// build/test -> the package root
const pkg = join(here, "../..");

test("src/generated/openapi.ts is what openapi.yaml gives (no drift)", () => {
  const r = spawnSync(process.execPath, [join(pkg, "scripts/gen-openapi-types.mjs"), "--check"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});

test("the endpoint table is the spec's operations, method and path", () => {
  // tsc already proved it against the generated file; this reads openapi.yaml itself.
  const spec = parse(readFileSync(join(pkg, "../../openapi.yaml"), "utf8")) as {
    paths: Record<string, Record<string, { operationId?: string }>>;
  };
  const fromSpec: Record<string, { method: string; path: string }> = {};
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (op.operationId) fromSpec[op.operationId] = { method: method.toUpperCase(), path };
    }
  }
  assert.deepEqual({ ...ENDPOINTS }, fromSpec);
});
