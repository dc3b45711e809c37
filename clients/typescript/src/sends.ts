// Sends that survive the network: each send has a `client_id` (generated unless given) and
// is retried with that same id after a network error, a 5xx or a rate limit, so the server
// stores it once (a repeated `client_id` answers the original message). A send resolves once,
// with the stored message, from whichever comes first: the HTTP answer or the `new_message`
// event carrying its `client_id` (the answer may be lost in the outage the event survives).
import { RtchatError, abortedError } from "./errors.js";
import type { Http } from "./http.js";
import type { Session } from "./session.js";
import type { ChatEvent, Id, Message, SendMessageRequest } from "./types.js";
import { Listeners, backoffDelay, randomId, sleep, type Backoff } from "./util.js";

export interface SendOptions {
  /** The idempotency key; generated (a UUID) when absent. Reuse it to retry a send yourself. */
  clientId?: string;
  /** v2: the message this one replies to. */
  replyTo?: Id;
  /** v2: mentioned member ids. */
  mentions?: Id[];
  /** Gives up (rejecting with code `aborted`); the message may still have been stored. */
  signal?: AbortSignal;
}

/** A send not yet confirmed, for optimistic UI. */
export interface PendingSend {
  clientId: string;
  chatId: Id;
  text: string;
  /** When send() was called (ms since the epoch). */
  startedAt: number;
  /** Attempts made so far. */
  attempts: number;
  /** Why the last attempt failed, while retrying. */
  lastError: RtchatError | undefined;
}

export interface SendRetry extends Backoff {
  /** Stop retrying this long after send() was called and reject with the last error. */
  maxElapsedMs: number;
}

interface Entry {
  info: PendingSend;
  promise: Promise<Message>;
  settle: (message: Message) => void;
  settled: boolean;
}

export class Sender {
  private readonly pending = new Map<string, Entry>();
  /** Fires with the pending sends whenever one starts, retries or ends. */
  readonly changes = new Listeners<[readonly PendingSend[]]>();

  constructor(
    private readonly http: Http,
    private readonly session: Session,
    private readonly retry: SendRetry,
  ) {}

  /** The sends in flight, oldest first; optionally of one chat. */
  list(chatId?: Id): PendingSend[] {
    return [...this.pending.values()]
      .map((e) => e.info)
      .filter((p) => chatId === undefined || p.chatId === chatId);
  }

  send(chatId: Id, text: string, options: SendOptions = {}): Promise<Message> {
    const clientId = options.clientId ?? randomId();
    const existing = this.pending.get(clientId);
    if (existing) return existing.promise;
    let settle!: (message: Message) => void;
    const settledPromise = new Promise<Message>((resolve) => (settle = resolve));
    const entry: Entry = {
      info: { clientId, chatId, text, startedAt: Date.now(), attempts: 0, lastError: undefined },
      promise: undefined as unknown as Promise<Message>,
      settle: (message) => {
        if (entry.settled) return;
        entry.settled = true;
        settle(message);
      },
      settled: false,
    };
    entry.promise = this.run(entry, settledPromise, options).finally(() => {
      this.pending.delete(clientId);
      this.emit();
    });
    this.pending.set(clientId, entry);
    this.emit();
    return entry.promise;
  }

  private async run(entry: Entry, settled: Promise<Message>, options: SendOptions): Promise<Message> {
    const { chatId, clientId, text } = entry.info;
    const body: SendMessageRequest = { text, client_id: clientId };
    if (options.replyTo !== undefined) body.reply_to = options.replyTo;
    if (options.mentions !== undefined) body.mentions = options.mentions;
    const path = `/chats/${encodeURIComponent(chatId)}/messages`;
    // `settled` wins any race: the event may confirm the send while a retry is in flight.
    const orSettled = <T>(p: Promise<T>) =>
      Promise.race([p.then((value) => ({ value })), settled.then((message) => ({ message }))]);
    for (;;) {
      entry.info.attempts++;
      try {
        const r = await orSettled(this.http.request<Message>("POST", path, { body, signal: options.signal }));
        if ("message" in r) return r.message;
        entry.settle(r.value);
        return r.value;
      } catch (err) {
        if (entry.settled) return settled;
        const e = err instanceof RtchatError ? err : abortedError(err);
        const elapsed = Date.now() - entry.info.startedAt;
        const retryable = e.isTransient || (e.status === 429 && e.code === "rate_limited");
        if (!retryable || e.code === "aborted" || elapsed >= this.retry.maxElapsedMs) throw e;
        entry.info.lastError = e;
        this.emit();
        const wait = Math.max(
          backoffDelay(this.retry, entry.info.attempts - 1),
          (e.retryAfter ?? 0) * 1000,
        );
        const r = await orSettled(
          sleep(Math.min(wait, this.retry.maxElapsedMs - elapsed), options.signal).catch((reason: unknown) => {
            throw abortedError(reason);
          }),
        );
        if ("message" in r) return r.message;
      }
    }
  }

  /** Confirms a pending send from its `new_message` event. */
  observe(event: ChatEvent): void {
    if (event.type !== "new_message") return;
    const m = event.payload;
    if (m.client_id === null || m.sender_id !== this.session.userId) return;
    const entry = this.pending.get(m.client_id);
    if (entry && entry.info.chatId === m.chat_id) entry.settle(m);
  }

  private emit(): void {
    if (this.changes.size > 0) this.changes.emit(this.list());
  }
}
