// Small, optional local state kept right by the events: the chat list with unread counts,
// and one chat's message window merging history pages, live events and pending sends.
// Both load over REST on the stream's resync (the first time included) and then follow
// the events; where an event cannot say the exact number (a read cursor moved to the middle,
// a message deleted), the chat is fetched again rather than guessed.
import type { ChatsApi, MessagesApi } from "./api.js";
import type { PendingSend, SendOptions } from "./sends.js";
import type { EventStream, Subscription } from "./stream.js";
import type { ChatEvent, ChatView, Id, Message, MessageList } from "./types.js";
import { Listeners } from "./util.js";

/** The caller's chats, most recent activity first, with unread counts. */
export class ChatListState {
  private readonly chats = new Map<Id, ChatView>();
  /** Chats being fetched again, and those whose fetch must repeat (an event came meanwhile). */
  private readonly refetching = new Map<Id, boolean>();
  private subscription: Subscription | undefined;
  private loadedOnce = false;
  /** Chats that events touched while a load was in flight, one set per load. */
  private readonly touchedDuringLoad: Set<Id>[] = [];
  readonly changes = new Listeners<[readonly ChatView[]]>();

  constructor(
    private readonly api: ChatsApi,
    private readonly stream: EventStream,
    private readonly me: () => Id | undefined,
  ) {}

  /** Follows the stream and loads the chats; resolves after the first load. */
  start(): Promise<void> {
    this.subscription = this.stream.subscribe((e) => this.apply(e), { onResync: () => this.load() });
    return this.load();
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }

  /** The chats, most recent activity first. */
  get list(): ChatView[] {
    return [...this.chats.values()].sort(byActivity);
  }

  get(chatId: Id): ChatView | undefined {
    return this.chats.get(chatId);
  }

  /** The badge: unread messages over all active chats. */
  get totalUnread(): number {
    let n = 0;
    for (const c of this.chats.values()) if (c.is_active) n += c.unread_count;
    return n;
  }

  /** v2: unread messages that mention the caller, over all active chats (0 on v1). */
  get totalMentions(): number {
    let n = 0;
    for (const c of this.chats.values()) if (c.is_active) n += c.unread_mentions ?? 0;
    return n;
  }

  get loaded(): boolean {
    return this.loadedOnce;
  }

  /** (Re)loads every chat over REST. */
  async load(): Promise<void> {
    const touched = new Set<Id>();
    this.touchedDuringLoad.push(touched);
    try {
      const all = await this.api.listAll();
      this.chats.clear();
      for (const c of all) this.chats.set(c.id, c);
      this.loadedOnce = true;
    } finally {
      this.touchedDuringLoad.splice(this.touchedDuringLoad.indexOf(touched), 1);
    }
    // The pages may predate events applied while they loaded: those chats, once more.
    for (const id of touched) this.refetch(id);
    this.changed();
  }

  /** Applies one durable event. */
  apply(event: ChatEvent): void {
    const chatId = event.type === "create_chat" || event.type === "update_chat" || event.type === "delete_chat"
      ? event.payload.id
      : event.payload.chat_id;
    for (const touched of this.touchedDuringLoad) touched.add(chatId);
    // A fetch of this chat in flight may predate the event: it will be made once more.
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
          ...event.payload,
        });
        // A chat new to the list (created, or the caller was added to a group with history):
        // its last message and unread counts are the server's to say.
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
        // A message the list already has (loaded after it was sent) must not count twice.
        if (chat.last_message && chat.last_message.id >= m.id) return;
        chat.last_message = m;
        const me = this.me();
        if (m.sender_id !== me && (chat.last_read_message_id ?? 0) < m.id) {
          chat.unread_count++;
          // v2: a mention of the caller counts where the server counts them.
          if (chat.unread_mentions !== undefined && me !== undefined && m.mentions?.includes(me)) chat.unread_mentions++;
        }
        break;
      }
      case "update_message": {
        const m = event.payload;
        const chat = this.chats.get(m.chat_id);
        if (!chat) return;
        if (chat.last_message?.id === m.id) chat.last_message = m;
        // v2: an edit can add or drop a mention of the caller in an unread message; only
        // the server knows whether it was counted before, so the chat is fetched again.
        if (chat.unread_mentions !== undefined && m.sender_id !== this.me() && (chat.last_read_message_id ?? 0) < m.id) {
          this.refetch(chat.id);
        }
        break;
      }
      case "delete_message": {
        const chat = this.chats.get(event.payload.chat_id);
        // The last message, or an unread one, went: only the server knows the new numbers.
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
          if (chat.unread_mentions !== undefined) chat.unread_mentions = 0;
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
  private refetch(chatId: Id): void {
    if (this.refetching.has(chatId)) {
      this.refetching.set(chatId, true);
      return;
    }
    this.refetching.set(chatId, false);
    this.api
      .get(chatId)
      .then(
        (chat) => {
          this.chats.set(chatId, chat);
        },
        (err: unknown) => {
          // Gone, or not ours any more.
          if ((err as { status?: number }).status === 404) this.chats.delete(chatId);
        },
      )
      .finally(() => {
        const again = this.refetching.get(chatId);
        this.refetching.delete(chatId);
        if (again) this.refetch(chatId);
        else this.changed();
      });
  }

  private changed(): void {
    if (this.changes.size > 0) this.changes.emit(this.list);
  }
}

function byActivity(a: ChatView, b: ChatView): number {
  const ta = a.last_message?.created_at ?? a.created_at;
  const tb = b.last_message?.created_at ?? b.created_at;
  if (ta !== tb) return ta < tb ? 1 : -1;
  return b.id - a.id;
}

/** An entry of a MessageWindow: a stored message, or a pending send shown optimistically. */
export type WindowEntry =
  | { kind: "message"; message: Message }
  | { kind: "pending"; pending: PendingSend };

/** One chat's messages: the latest page, older pages on demand, live events, and the
 * caller's pending sends at the end (each replaced by its stored message, never shown twice). */
export class MessageWindow {
  private readonly messages = new Map<Id, Message>();
  private pendingSends: readonly PendingSend[] = [];
  private subscription: Subscription | undefined;
  private stopPending: (() => void) | undefined;
  private ops: Promise<unknown> = Promise.resolve();
  /** This chat's events seen while a page load was in flight, one list per load: the pages
   * may predate them, so they are applied again on top of what was loaded. */
  private readonly eventsDuringLoad: ChatEvent[][] = [];
  /** Whether older messages exist on the server than the oldest one here. */
  hasOlder = false;
  readonly changes = new Listeners<[readonly WindowEntry[]]>();

  constructor(
    private readonly api: MessagesApi,
    private readonly stream: EventStream,
    readonly chatId: Id,
    private readonly pageSize = 50,
    /** The signed-in user, whose own reactions go to `my_reactions`. */
    private readonly me: () => Id | undefined = () => undefined,
  ) {}

  /** Loads the latest page and follows the chat. */
  async start(): Promise<void> {
    this.subscription = this.stream.subscribe((e) => this.apply(e), { onResync: () => this.loadLatest() });
    this.stopPending = this.api.onPending((all) => {
      this.pendingSends = all.filter((p) => p.chatId === this.chatId);
      this.changed();
    });
    await this.loadLatest();
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.stopPending?.();
  }

  /** Loads the latest messages again, as far back as the window reaches (at least a page),
   * keeping messages that arrived live while it loaded (the pages may predate them). After a
   * resync anything held may be stale (edited, deleted), so all of it is fetched anew. */
  loadLatest(): Promise<void> {
    return this.serial(() => this.doLoadLatest());
  }

  /** Loads and paging run one at a time, so a reload after a resync and a page of history
   * asked for meanwhile each see what the other did. */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.ops.then(op);
    this.ops = result.catch(() => undefined);
    return result;
  }

  private async doLoadLatest(): Promise<void> {
    const reach = this.sorted()[0]?.id;
    const live: ChatEvent[] = [];
    this.eventsDuringLoad.push(live);
    const loaded: Message[] = [];
    let hasOlder: boolean;
    try {
      let page = await this.api.list(this.chatId, { limit: this.pageSize });
      loaded.push(...page.messages);
      // Bounded by what the user had paged in: one page per page held.
      while (page.has_more && reach !== undefined && (page.messages[0]?.id ?? 0) > reach) {
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
  loadOlder(): Promise<boolean> {
    return this.serial(() => this.doLoadOlder());
  }

  private async doLoadOlder(): Promise<boolean> {
    const oldest = this.sorted()[0];
    if (!oldest || !this.hasOlder) return false;
    const live: ChatEvent[] = [];
    this.eventsDuringLoad.push(live);
    let page: MessageList;
    try {
      page = await this.api.list(this.chatId, { before: oldest.id, limit: this.pageSize });
    } finally {
      this.eventsDuringLoad.splice(this.eventsDuringLoad.indexOf(live), 1);
    }
    const fresh = page.messages.filter((m) => !this.messages.has(m.id));
    for (const m of fresh) this.messages.set(m.id, m);
    // Edits, deletes and reactions of those older messages may have come meanwhile.
    for (const e of live) this.mutate(e, new Set(fresh.map((m) => m.id)));
    this.hasOlder = page.has_more;
    this.changed();
    return page.messages.length > 0;
  }

  /** The message with this id, if the window holds it. */
  get(messageId: Id): Message | undefined {
    return this.messages.get(messageId);
  }

  /** Sends a message to this chat (shown as pending until stored); `options` carries a
   * v2 `replyTo` and `mentions`. */
  send(text: string, options: SendOptions = {}): Promise<Message> {
    return this.api.send(this.chatId, text, options).then((m) => {
      // The answer may beat the event: show it now; the event finds it already here.
      this.messages.set(m.id, m);
      this.changed();
      return m;
    });
  }

  /** Stored messages ascending by id, then pending sends not yet stored. */
  get entries(): WindowEntry[] {
    const stored = this.sorted();
    const storedClientIds = new Set(stored.map((m) => m.client_id).filter((c) => c !== null));
    const out: WindowEntry[] = stored.map((message) => ({ kind: "message", message }));
    for (const pending of this.pendingSends) {
      if (!storedClientIds.has(pending.clientId)) out.push({ kind: "pending", pending });
    }
    return out;
  }

  apply(event: ChatEvent): void {
    const chatId = event.type === "delete_chat" ? event.payload.id : "chat_id" in event.payload ? event.payload.chat_id : undefined;
    if (chatId !== this.chatId) return;
    for (const live of this.eventsDuringLoad) live.push(event);
    if (this.mutate(event)) this.changed();
  }

  /** Applies one event of this chat to the messages held (only to `only`, if given);
   * true when something changed. Applying an event twice is harmless (a page may already
   * reflect it): each one states the new state, not a difference. */
  private mutate(event: ChatEvent, only?: ReadonlySet<Id>): boolean {
    switch (event.type) {
      case "new_message":
      case "update_message": {
        const m = event.payload;
        if (only && !only.has(m.id)) return false;
        // Live messages are newer than everything loaded; an update only matters if held.
        const held = this.messages.get(m.id);
        if (event.type === "update_message" && !held) return false;
        // Events carry no `my_reactions` (they go to every member): keep what is known.
        const mine = held?.my_reactions ?? (event.type === "new_message" && m.reactions ? [] : undefined);
        this.messages.set(m.id, mine !== undefined && m.my_reactions === undefined ? { ...m, my_reactions: mine } : m);
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
        // v2: the emoji's new count; an emoji at 0 leaves the list, a new one joins its end.
        const r = event.payload;
        const m = only && !only.has(r.message_id) ? undefined : this.messages.get(r.message_id);
        if (!m) return false;
        const reactions = (m.reactions ?? []).map((x) => (x.emoji === r.emoji ? { ...x, count: r.count } : x));
        if (!reactions.some((x) => x.emoji === r.emoji)) reactions.push({ emoji: r.emoji, count: r.count });
        const updated: Message = { ...m, reactions: reactions.filter((x) => x.count > 0) };
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

  private sorted(): Message[] {
    return [...this.messages.values()].sort((a, b) => a.id - b.id);
  }

  private changed(): void {
    if (this.changes.size > 0) this.changes.emit(this.entries);
  }
}
