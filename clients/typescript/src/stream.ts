// The event stream: one WebSocket to `/ws/notif`, kept open across network drops, server
// restarts and token expiry, that hands every durable event to the subscribers exactly once,
// in `seq` order. The cursor (the last `seq` handled) is persisted through a CursorStore and
// sent as `since` on every reconnect, so the server replays what was missed. A duplicate or a
// gap never reaches a handler: both are checked here, frame by frame.
import type { Session } from "./session.js";
import type {
  ChatEvent,
  ChatEventType,
  Presence,
  ReadyInfo,
  ServerErrorFrame,
  Typing,
  UnknownEvent,
} from "./types.js";
import { Listeners, backoffDelay, type Backoff, type KeyValueStorage } from "./util.js";

/** Where the cursor lives, per user (a shared device may switch users). The default keeps it
 * in memory; a `localStorage`-backed one lets a reloaded page resume where it was. */
export interface CursorStore {
  load(userId: number): number | null | Promise<number | null>;
  save(userId: number, seq: number): void | Promise<void>;
}

export class MemoryCursorStore implements CursorStore {
  private readonly cursors = new Map<number, number>();
  load(userId: number): number | null {
    return this.cursors.get(userId) ?? null;
  }
  save(userId: number, seq: number): void {
    this.cursors.set(userId, seq);
  }
}

/** A CursorStore on Web Storage keys `<prefix><userId>`. */
export class WebStorageCursorStore implements CursorStore {
  constructor(
    private readonly storage: Pick<KeyValueStorage, "getItem" | "setItem">,
    private readonly prefix = "rtchat.cursor.",
  ) {}
  load(userId: number): number | null {
    const raw = this.storage.getItem(this.prefix + userId);
    return raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
  }
  save(userId: number, seq: number): void {
    this.storage.setItem(this.prefix + userId, String(seq));
  }
}

/** The part of the WebSocket API the client uses: the browser's `WebSocket` and the `ws`
 * package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  // The handlers take `any`: the DOM's and ws's event types differ, and a handler property
  // is checked contravariantly, so no narrower type admits both.
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type StreamState =
  /** Not subscribed. */
  | "idle"
  /** Opening a socket, up to its `ready` frame. */
  | "connecting"
  /** Live: events flow. */
  | "open"
  /** Waiting out the backoff before the next attempt. */
  | "waiting"
  /** No session (never signed in, logged out, or the refresh token was refused). */
  | "signed_out";

export interface ResyncInfo {
  /** `initial`: no cursor to resume from (first run); `resync_required`: the server could
   * not replay from the cursor (older than the retention window, or unknown to it). */
  reason: "initial" | "resync_required";
  /** The new cursor: events after it follow. */
  seq: number;
}

/** Something went wrong that the stream survived. */
export type StreamProblem =
  /** A handler threw; the event counts as handled. */
  | { kind: "handler_error"; seq: number; error: unknown }
  /** The server broke the contract (a gap or a duplicate `seq`): the frame was not
   * delivered, and for a gap the stream resumed from the cursor. A bug to report. */
  | { kind: "protocol_violation"; detail: string; cursor: number; seq: number }
  /** An `error` frame: the server could not act on something the client sent. */
  | { kind: "server_error"; error: ServerErrorFrame }
  /** The socket closed; the stream reconnects. */
  | { kind: "closed"; code: number; reason: string };

export type EventHandler = (event: ChatEvent) => void | Promise<void>;

export interface SubscribeOptions {
  /** Load (or reload) state over REST: the first time (no cursor) and after the server
   * asked for a resync. Events after `seq` follow once it settles. */
  onResync?: (info: ResyncInfo) => void | Promise<void>;
  /** Each socket's `ready` frame. */
  onReady?: (ready: ReadyInfo) => void;
  onTyping?: (typing: Typing) => void;
  /** v2 presence frames. */
  onPresence?: (presence: Presence) => void;
  onState?: (state: StreamState) => void;
  onProblem?: (problem: StreamProblem) => void;
  /** Durable events of types this client does not know (a newer server); they keep their
   * place in `seq` order. */
  onUnknownEvent?: (event: UnknownEvent) => void | Promise<void>;
}

export interface Subscription {
  unsubscribe(): void;
}

export interface StreamOptions {
  /** `ws://` or `wss://` URL of `/ws/notif` (derived from the base URL by default). */
  url: string;
  WebSocket: WebSocketConstructor | undefined;
  cursorStore: CursorStore;
  backoff: Backoff;
  /** Application pings this often (the server's own pings are invisible to a browser);
   * default: the `ready` frame's heartbeat interval. */
  pingIntervalMs: number | undefined;
  /** Silence (no frame at all) for a ping interval plus this long means the connection is
   * dead even if the OS has not noticed (a cut cable, a NAT that forgot us). */
  pongTimeoutMs: number;
  /** From opening a socket to its `ready` frame. */
  connectTimeoutMs: number;
  /** The session was refused on the socket: check it over REST (which refreshes). */
  probe: () => Promise<unknown>;
}

/** Frames waiting for slow handlers before the socket is dropped (and resumed with `since`
 * once they are handled): the log is on the server, so dropping loses nothing, while an
 * unbounded queue could take the page's memory. */
const MAX_QUEUED_FRAMES = 5_000;
/** A connection that stayed open this long resets the backoff. */
const STABLE_AFTER_MS = 10_000;
/** Failed attempts without a `ready` before the session is probed over REST (a refused
 * upgrade looks like any other failure to a browser). */
const PROBE_AFTER_FAILURES = 2;
/** Pings never go out more often than this (the server closes flooders with 1008). */
const MIN_PING_INTERVAL_MS = 500;
/** Close codes that mean "this client broke the protocol": reported, then retried slowly. */
const CLIENT_FAULT_CODES = new Set([1002, 1003, 1007, 1008, 1009]);
/** The server's code for an expired token or an ended session. */
const CLOSE_TOKEN_EXPIRED = 4001;

const KNOWN_TYPES: ReadonlySet<string> = new Set<ChatEventType>([
  "create_chat",
  "update_chat",
  "delete_chat",
  "new_message",
  "update_message",
  "delete_message",
  "read",
  "reaction",
]);

/** One socket and what is known about it. */
interface Connection {
  ws: WebSocketLike;
  token: string;
  ready: ReadyInfo | null;
  readyAt: number;
  lastHeard: number;
  /** Set once the stream stopped listening to it (closed, gap, stalled). */
  dead: boolean;
  pingTimer: ReturnType<typeof setInterval> | undefined;
  connectTimer: ReturnType<typeof setTimeout> | undefined;
}

interface Subscriber {
  handler: EventHandler;
  options: SubscribeOptions;
}

/** Counters for tests and dashboards. */
export interface StreamStats {
  /** Events handed to the handlers. */
  delivered: number;
  /** Sockets opened (the first included). */
  connects: number;
  /** Frames dropped because their `seq` was already handled (a server bug if not zero). */
  duplicates: number;
  /** Jumps in `seq` seen (a server bug if not zero, except right after a v1 resync). */
  gaps: number;
  resyncs: number;
}

export class EventStream {
  private readonly subscribers = new Set<Subscriber>();
  /** Hooks that see every event before the subscribers (the send tracker). */
  readonly observers = new Listeners<[ChatEvent]>();
  private conn: Connection | null = null;
  private cursor: number | null = null;
  private cursorUser: number | undefined;
  /** A cursor to start from instead of the stored one (subscribe's `since`). */
  private startAt: number | null = null;
  private stateValue: StreamState = "idle";
  private attempt = 0;
  private connectCalls = 0;
  private failuresWithoutReady = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Frames are handled one at a time, in arrival order, on this chain. */
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private running = false;
  /** Bumped by every start/stop so a stale async step can tell it lost. */
  private epoch = 0;
  readonly stats: StreamStats = { delivered: 0, connects: 0, duplicates: 0, gaps: 0, resyncs: 0 };

  constructor(
    private readonly session: Session,
    private readonly options: StreamOptions,
  ) {
    session.events.add((e) => {
      if (e.type === "signed_out") this.signedOut();
      // Signed in again (or another tab did): carry on.
      else if (this.running && this.stateValue === "signed_out") void this.connect(this.epoch);
      // Someone else signed in on this client: their stream, from their cursor.
      else if (this.running && this.cursorUser !== undefined && session.userId !== this.cursorUser) {
        clearTimeout(this.retryTimer);
        if (this.conn) this.abandon(this.conn, 1000, "another user signed in");
        this.conn = null;
        void this.connect(this.epoch);
      }
    });
  }

  get state(): StreamState {
    return this.stateValue;
  }

  /** The last `seq` handled, or null before the first `ready`. */
  get lastSeq(): number | null {
    return this.cursor;
  }

  subscribe(handler: EventHandler, options: SubscribeOptions & { since?: number } = {}): Subscription {
    if (!this.webSocket()) throw new TypeError("no WebSocket implementation: pass one as the `WebSocket` option");
    const subscriber: Subscriber = { handler, options };
    this.subscribers.add(subscriber);
    if (options.since !== undefined && !this.running) this.startAt = options.since;
    if (!this.running) this.start();
    else if (this.stateValue === "signed_out") void this.connect(this.epoch);
    return {
      unsubscribe: () => {
        this.subscribers.delete(subscriber);
        if (this.subscribers.size === 0) this.stop();
      },
    };
  }

  private webSocket(): WebSocketConstructor | undefined {
    return this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  }

  /** Tells the chat's other members that the user is typing. False when not connected. */
  typing(chatId: number): boolean {
    return this.sendFrame({ type: "typing", payload: { chat_id: chatId } });
  }

  private sendFrame(frame: object): boolean {
    const c = this.conn;
    if (!c || c.dead || !c.ready) return false;
    try {
      c.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  private start(): void {
    this.running = true;
    this.epoch++;
    void this.connect(this.epoch);
  }

  /** Closes the socket and stops reconnecting. */
  stop(): void {
    this.running = false;
    this.epoch++;
    clearTimeout(this.retryTimer);
    if (this.conn) this.abandon(this.conn, 1000, "unsubscribed");
    this.conn = null;
    this.setState("idle");
  }

  /** Reconnects now if waiting out a backoff (the browser says it is online again). */
  nudge(): void {
    if (this.running && this.stateValue === "waiting") {
      clearTimeout(this.retryTimer);
      void this.connect(this.epoch);
    }
  }

  private signedOut(): void {
    if (!this.running) return;
    clearTimeout(this.retryTimer);
    if (this.conn) this.abandon(this.conn, 1000, "signed out");
    this.conn = null;
    this.setState("signed_out");
  }

  private setState(state: StreamState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    for (const s of [...this.subscribers]) s.options.onState?.(state);
  }

  private problem(problem: StreamProblem): void {
    let heard = false;
    for (const s of [...this.subscribers]) {
      if (s.options.onProblem) {
        heard = true;
        s.options.onProblem(problem);
      }
    }
    // A broken contract is a server bug: said out loud even when nobody listens.
    if (!heard && problem.kind === "protocol_violation") {
      console.error(`@rtchat/client: the server broke the seq contract (${problem.detail}: cursor ${problem.cursor}, got ${problem.seq}); please report it`);
    }
  }

  private async connect(epoch: number): Promise<void> {
    // The latest call wins: an older one still waiting below gives up, so two paths asking
    // at once (a login and a subscribe) open one socket, not two.
    const call = ++this.connectCalls;
    const stale = () => call !== this.connectCalls || epoch !== this.epoch || !this.running;
    // Frames of the previous socket still queued are real events: handle them first, so
    // `since` is the cursor after them.
    await this.chain;
    if (stale() || (this.conn && !this.conn.dead)) return;
    this.setState("connecting");
    let token: string | null;
    try {
      token = await this.session.accessToken();
    } catch {
      // The refresh did not get through (offline): try again later.
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
      // Another user signed in: their cursor, not the last one's.
      this.cursorUser = userId;
      this.cursor = this.startAt ?? (userId !== undefined ? await this.options.cursorStore.load(userId) : null);
      this.startAt = null;
      if (stale()) return;
    }
    const Ctor = this.webSocket();
    if (!Ctor) return; // subscribe() refused to start without one
    const url = new URL(this.options.url);
    url.searchParams.set("token", token);
    if (this.cursor !== null) url.searchParams.set("since", String(this.cursor));
    let ws: WebSocketLike;
    try {
      ws = new Ctor(url.toString());
    } catch {
      this.retry(epoch);
      return;
    }
    this.stats.connects++;
    const conn: Connection = {
      ws,
      token,
      ready: null,
      readyAt: 0,
      lastHeard: Date.now(),
      dead: false,
      pingTimer: undefined,
      connectTimer: undefined,
    };
    this.conn = conn;
    conn.connectTimer = setTimeout(() => {
      if (!conn.ready && !conn.dead) this.lost(conn, 0, "no ready frame in time");
    }, this.options.connectTimeoutMs);
    ws.onmessage = (event: { data: unknown }) => {
      if (conn.dead) return;
      conn.lastHeard = Date.now();
      if (typeof event.data !== "string") return;
      if (++this.queued > MAX_QUEUED_FRAMES) {
        this.lost(conn, 0, "handlers fell behind");
        return;
      }
      const raw = event.data;
      this.chain = this.chain
        .then(() => this.handleFrame(conn, raw))
        .catch(() => {
          // handleFrame reports its own failures; the chain must never stay rejected.
        })
        .finally(() => {
          this.queued--;
        });
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      this.lost(conn, event.code ?? 1006, event.reason ?? "");
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  /** A connection ended (closed, stalled, or given up on): plan what comes next. */
  private lost(conn: Connection, code: number, reason: string): void {
    if (conn.dead) return;
    this.abandon(conn, 4000, reason);
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
      // The token expired or the session ended: refresh (unless it already was), then
      // straight back.
      // A socket closed with 4001 right after it opened is not an expiry but a refusal:
      // back off rather than loop.
      const refusedAtOnce = !conn.ready || Date.now() - conn.readyAt < STABLE_AFTER_MS / 10;
      this.session.refresh(conn.token).then(
        (token) => {
          if (epoch !== this.epoch) return;
          if (!token) this.signedOut();
          else if (refusedAtOnce) this.retry(epoch);
          else void this.connect(epoch);
        },
        () => this.retry(epoch),
      );
      return;
    }
    if (CLIENT_FAULT_CODES.has(code)) this.attempt = Math.max(this.attempt, 4);
    if (this.failuresWithoutReady > 0 && this.failuresWithoutReady % PROBE_AFTER_FAILURES === 0) {
      // A refused upgrade (401) is invisible to a browser: ask over REST, which refreshes a
      // stale token or ends a dead session; any other failure just means "retry".
      this.options.probe().catch(() => undefined);
    }
    this.retry(epoch);
  }

  /** Stops listening to a socket and closes it without waiting for the close handshake. */
  private abandon(conn: Connection, code: number, reason: string): void {
    conn.dead = true;
    clearTimeout(conn.connectTimer);
    clearInterval(conn.pingTimer);
    const ws = conn.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    // Not null: ws (Node) reports closing a socket that is still connecting as an `error`
    // event, and an `error` nobody listens to is thrown.
    ws.onerror = () => undefined;
    try {
      // ws (Node) can drop the socket at once; a browser closes it in the background.
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (terminate) terminate.call(ws);
      else ws.close(code, reason.slice(0, 100));
    } catch {
      // Closing a socket that never opened may throw; it is gone either way.
    }
  }

  private retry(epoch: number): void {
    if (epoch !== this.epoch || !this.running) return;
    const delay = backoffDelay(this.options.backoff, this.attempt++);
    this.setState("waiting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(epoch), delay);
  }

  private async handleFrame(conn: Connection, raw: string): Promise<void> {
    if (conn.dead) return;
    let frame: { type?: unknown; seq?: unknown; payload?: unknown };
    try {
      frame = JSON.parse(raw) as typeof frame;
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
    if (typeof frame.seq === "number") {
      await this.handleEvent(conn, frame as UnknownEvent);
      return;
    }
    switch (frame.type) {
      case "ready":
        await this.handleReady(conn, frame.payload as ReadyInfo);
        return;
      case "resync_required": {
        const given = (frame.payload as { seq?: unknown } | undefined)?.seq;
        // v2 names the cursor the stream goes on from; v1 goes on after `ready`'s seq.
        const seq = typeof given === "number" ? given : (conn.ready?.seq ?? 0);
        await this.resync({ reason: "resync_required", seq });
        return;
      }
      case "typing":
        for (const s of [...this.subscribers]) s.options.onTyping?.(frame.payload as Typing);
        return;
      case "presence":
        for (const s of [...this.subscribers]) s.options.onPresence?.(frame.payload as Presence);
        return;
      case "error":
        this.problem({ kind: "server_error", error: frame.payload as ServerErrorFrame });
        return;
      default:
        // `pong` and frame types this client does not know.
        return;
    }
  }

  private async handleReady(conn: Connection, ready: ReadyInfo): Promise<void> {
    clearTimeout(conn.connectTimer);
    conn.ready = ready;
    conn.readyAt = Date.now();
    this.failuresWithoutReady = 0;
    const interval = Math.max(
      MIN_PING_INTERVAL_MS,
      this.options.pingIntervalMs ?? ready.heartbeat_interval_ms,
    );
    // A ping unanswered (no frame at all since) for pongTimeoutMs means a dead connection.
    // Judged from the ping, not from the timer: a background tab's timers may fire minutes
    // late, and that alone must not look like a dead server.
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
        // onclose will follow.
      }
    }, tick);
    this.setState("open");
    for (const s of [...this.subscribers]) s.options.onReady?.(ready);
    if (this.cursor === null) await this.resync({ reason: "initial", seq: ready.seq });
  }

  /** Every subscriber hears it, even if the socket drops meanwhile: the cursor has moved,
   * so the next socket will not say it again. */
  private async resync(info: ResyncInfo): Promise<void> {
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

  private async handleEvent(conn: Connection, event: UnknownEvent): Promise<void> {
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
      this.observers.emit(event as ChatEvent);
      for (const s of [...this.subscribers]) {
        try {
          await s.handler(event as ChatEvent);
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
  private violation(conn: Connection, detail: string, cursor: number, seq: number): void {
    this.problem({ kind: "protocol_violation", detail, cursor, seq });
    if (this.conn === conn) this.lost(conn, 0, detail);
  }

  private async advance(seq: number): Promise<void> {
    this.cursor = seq;
    if (this.cursorUser !== undefined) await this.options.cursorStore.save(this.cursorUser, seq);
  }
}
