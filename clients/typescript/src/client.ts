// The client: wires the session, the HTTP edge, the stream and the send tracker together
// and hands out the API groups. Everything a page needs starts from `new RtchatClient`.
import { AuthApi, ChatsApi, EventsRestApi, MessagesApi, MiscApi, UsersApi } from "./api.js";
import { Http } from "./http.js";
import { Sender, type SendRetry } from "./sends.js";
import { MemoryTokenStore, Session, type TokenStore } from "./session.js";
import { ChatListState, MessageWindow } from "./state.js";
import {
  EventStream,
  MemoryCursorStore,
  type CursorStore,
  type EventHandler,
  type StreamState,
  type StreamStats,
  type SubscribeOptions,
  type Subscription,
  type WebSocketConstructor,
} from "./stream.js";
import type { Id, TokenPair } from "./types.js";
import type { Backoff } from "./util.js";

export interface ClientOptions {
  /** Where rtchat answers, e.g. `https://chat.example.com` or `location.origin`. */
  baseUrl: string;
  /** The WebSocket class: the global one by default (browsers, Node >= 22); on Node 18/20
   * pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** `fetch` (the global one by default). */
  fetch?: typeof fetch;
  /** Where the tokens live (memory by default). */
  tokenStore?: TokenStore;
  /** Where the event cursor lives (memory by default). */
  cursorStore?: CursorStore;
  /** Bound of each HTTP request, in ms (default 15 000). */
  requestTimeoutMs?: number;
  /** 429 `rate_limited` answers are waited out this many times (default 2) when the
   * `Retry-After` is at most `maxRetryAfterSecs` (default 5). */
  rateLimit?: { retries?: number; maxRetryAfterSecs?: number };
  /** The stream's reconnect backoff (default 500 ms doubling up to 30 s, full jitter). */
  reconnect?: Partial<Backoff>;
  /** Send retries (default 500 ms doubling up to 10 s, for at most 2 minutes). */
  sendRetry?: Partial<SendRetry>;
  /** Application pings on the socket (default: the server's heartbeat interval). */
  pingIntervalMs?: number;
  /** Silence beyond a ping interval that counts as a dead connection (default 10 000 ms). */
  pongTimeoutMs?: number;
  /** From opening a socket to its `ready` frame (default 15 000 ms). */
  connectTimeoutMs?: number;
}

/** `client.events`: the stream, plus the log over REST. */
export class EventsApi extends EventsRestApi {
  constructor(
    http: Http,
    private readonly stream: EventStream,
  ) {
    super(http);
  }

  /** Every durable event exactly once, in `seq` order, across reconnects; see
   * SubscribeOptions for resyncs, typing, presence and problems. `since` starts from that
   * seq instead of the stored cursor. */
  subscribe(handler: EventHandler, options: SubscribeOptions & { since?: number } = {}): Subscription {
    return this.stream.subscribe(handler, options);
  }
  /** Sends a `typing` frame for the chat; false when the socket is not open. */
  typing(chatId: Id): boolean {
    return this.stream.typing(chatId);
  }
  get state(): StreamState {
    return this.stream.state;
  }
  /** The last `seq` handled. */
  get lastSeq(): number | null {
    return this.stream.lastSeq;
  }
  get stats(): Readonly<StreamStats> {
    return this.stream.stats;
  }
}

export class RtchatClient {
  readonly auth: AuthApi;
  readonly users: UsersApi;
  readonly chats: ChatsApi;
  readonly messages: MessagesApi;
  readonly events: EventsApi;
  /** v2 totals and presence, health and metrics. */
  readonly misc: MiscApi;
  private readonly session: Session;
  private readonly stream: EventStream;
  private readonly offOnline: () => void;

  constructor(options: ClientOptions) {
    const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    // The session refreshes through the HTTP edge, which asks the session for tokens.
    this.session = new Session(options.tokenStore ?? new MemoryTokenStore(), (refreshToken) =>
      http.request<TokenPair>("POST", "/auth/refresh", { body: { refresh_token: refreshToken }, auth: false }),
    );
    const http = new Http(
      {
        baseUrl: options.baseUrl,
        fetch: fetchImpl,
        timeoutMs: options.requestTimeoutMs ?? 15_000,
        rateLimitRetries: options.rateLimit?.retries ?? 2,
        maxRetryAfterSecs: options.rateLimit?.maxRetryAfterSecs ?? 5,
      },
      this.session,
    );
    const wsUrl = new URL(http.url("/ws/notif"));
    wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
    this.auth = new AuthApi(http, this.session);
    this.stream = new EventStream(this.session, {
      url: wsUrl.toString(),
      WebSocket: options.WebSocket,
      cursorStore: options.cursorStore ?? new MemoryCursorStore(),
      backoff: { baseMs: 500, maxMs: 30_000, ...options.reconnect },
      pingIntervalMs: options.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
      probe: () => this.auth.me(),
    });
    const sender = new Sender(http, this.session, {
      baseMs: 500,
      maxMs: 10_000,
      maxElapsedMs: 120_000,
      ...options.sendRetry,
    });
    this.stream.observers.add((event) => sender.observe(event));
    this.users = new UsersApi(http);
    this.chats = new ChatsApi(http, this.session);
    this.messages = new MessagesApi(http, sender);
    this.events = new EventsApi(http, this.stream);
    this.misc = new MiscApi(http);
    // A browser back online: reconnect now rather than at the end of the backoff.
    const target = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
    const online = () => this.stream.nudge();
    target.addEventListener?.("online", online);
    this.offOnline = () => target.removeEventListener?.("online", online);
  }

  /** Resolves once the stored tokens are loaded (a reloaded page's session). */
  async ready(): Promise<void> {
    await this.session.ready();
  }

  /** A chat list kept right by the events (call `start()` on it). */
  chatList(): ChatListState {
    return new ChatListState(this.chats, this.stream, () => this.session.userId);
  }

  /** One chat's message window kept right by the events (call `start()` on it). */
  messageWindow(chatId: Id, pageSize?: number): MessageWindow {
    return new MessageWindow(this.messages, this.stream, chatId, pageSize, () => this.session.userId);
  }

  /** Stops the stream and the background refresh (keeps the stored tokens). */
  close(): void {
    this.stream.stop();
    this.session.close();
    this.offOnline();
  }
}
