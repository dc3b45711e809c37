// The login session: the access and refresh tokens, kept in a pluggable store, and the
// refresh that keeps the access token fresh. Refresh tokens are single-use and presenting a
// used one again revokes the whole session, so every refresh goes through one in-flight
// promise, and the store is re-read first in case another tab already refreshed.
import type { TokenPair } from "./types.js";
import { RtchatError } from "./errors.js";
import { Listeners, backoffDelay, jwtClaims, type KeyValueStorage } from "./util.js";

/** What a TokenStore keeps. */
export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, ms since the epoch, by this machine's clock. */
  expiresAt: number;
  /** The access token's whole lifetime in ms (`expires_in`), to plan the refresh. */
  lifetimeMs?: number;
}

/** Where tokens live. The default keeps them in memory (gone with the page); pass one backed
 * by `localStorage`, secure storage on mobile, or a file, to survive a reload. */
export interface TokenStore {
  load(): StoredTokens | null | Promise<StoredTokens | null>;
  save(tokens: StoredTokens | null): void | Promise<void>;
}

export class MemoryTokenStore implements TokenStore {
  private tokens: StoredTokens | null = null;
  load(): StoredTokens | null {
    return this.tokens;
  }
  save(tokens: StoredTokens | null): void {
    this.tokens = tokens;
  }
}

/** A TokenStore on a Web Storage (`localStorage`) key. */
export class WebStorageTokenStore implements TokenStore {
  constructor(
    private readonly storage: KeyValueStorage,
    private readonly key = "rtchat.tokens",
  ) {}
  load(): StoredTokens | null {
    const raw = this.storage.getItem(this.key);
    if (!raw) return null;
    try {
      const t = JSON.parse(raw) as StoredTokens;
      return typeof t.accessToken === "string" && typeof t.refreshToken === "string" ? t : null;
    } catch {
      return null;
    }
  }
  save(tokens: StoredTokens | null): void {
    if (tokens) this.storage.setItem(this.key, JSON.stringify(tokens));
    else this.storage.removeItem(this.key);
  }
}

/** Refresh when less than this share of the token's lifetime is left... */
const REFRESH_AT_REMAINING_SHARE = 0.2;
/** ...but never earlier than a minute before expiry (a 30-minute token refreshes at 29). */
const REFRESH_MARGIN_CAP_MS = 60_000;
/** Retry a refresh that failed on the network this soon, growing, up to the cap. */
const REFRESH_RETRY = { baseMs: 1_000, maxMs: 30_000 };

/** The Web Locks API, as far as the refresh uses it. */
interface WebLocks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}
/** The lock every tab of an origin takes around a refresh. */
const REFRESH_LOCK = "rtchat.refresh";

/** setTimeout fires at once for delays of 2^31 ms or more; a 30-day token needs hops. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export type SessionEvent =
  | { type: "tokens"; tokens: StoredTokens }
  /** The session ended: logout, or the refresh token was refused. */
  | { type: "signed_out"; reason: "logout" | "refresh_refused" };

export class Session {
  private tokens: StoredTokens | null = null;
  private loaded: Promise<void> | null = null;
  private inflight: Promise<string | null> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private closed = false;
  readonly events = new Listeners<[SessionEvent]>();

  constructor(
    private readonly store: TokenStore,
    private readonly refreshCall: (refreshToken: string) => Promise<TokenPair>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads the stored tokens once. */
  ready(): Promise<void> {
    this.loaded ??= (async () => {
      this.tokens = (await this.store.load()) ?? null;
      this.schedule();
    })();
    return this.loaded;
  }

  get current(): StoredTokens | null {
    return this.tokens;
  }

  /** The user id in the access token's `sub`, if signed in. */
  get userId(): number | undefined {
    const sub = this.tokens ? jwtClaims(this.tokens.accessToken)?.sub : undefined;
    return sub !== undefined && /^\d+$/.test(sub) ? Number(sub) : undefined;
  }

  /** Adopts a fresh pair (after login or refresh). */
  async setPair(pair: TokenPair): Promise<StoredTokens> {
    const tokens: StoredTokens = {
      accessToken: pair.access_token,
      refreshToken: pair.refresh_token,
      expiresAt: this.now() + pair.expires_in * 1000,
      lifetimeMs: pair.expires_in * 1000,
    };
    await this.adopt(tokens);
    return tokens;
  }

  private async adopt(tokens: StoredTokens): Promise<void> {
    this.tokens = tokens;
    this.failures = 0;
    await this.store.save(tokens);
    this.schedule();
    this.events.emit({ type: "tokens", tokens });
  }

  /** Forgets the tokens (logout, or a refused refresh). */
  async clear(reason: "logout" | "refresh_refused"): Promise<void> {
    const had = this.tokens !== null;
    this.tokens = null;
    clearTimeout(this.timer);
    await this.store.save(null);
    if (had) this.events.emit({ type: "signed_out", reason });
  }

  /** An access token to use now: refreshed first when it is about to expire. Null when
   * signed out. */
  async accessToken(): Promise<string | null> {
    await this.ready();
    const t = this.tokens;
    if (!t) return null;
    if (t.expiresAt - this.now() > this.margin(t)) return t.accessToken;
    try {
      return await this.refresh(t.accessToken);
    } catch (err) {
      // The refresh did not get through, but the old token may still have a moment left.
      const still = this.tokens;
      if (still && still.expiresAt > this.now()) return still.accessToken;
      throw err;
    }
  }

  /** Refreshes the pair unless `stale` is no longer the current access token (someone else
   * refreshed meanwhile). One refresh at a time. Resolves to the new access token, or null
   * when the session ended; rejects on a network error (the tokens are kept for a retry). */
  refresh(stale?: string): Promise<string | null> {
    // Tabs sharing a store would refresh at the same moment (their tokens expire together):
    // a Web Lock, where there is one, makes the second wait and find the first one's pair.
    const locks = (globalThis as { navigator?: { locks?: WebLocks } }).navigator?.locks;
    const run = () => this.doRefresh(stale);
    this.inflight ??= (locks ? locks.request(REFRESH_LOCK, run) : run()).finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async doRefresh(stale: string | undefined): Promise<string | null> {
    await this.ready();
    // Another tab (sharing the store) may have refreshed: its pair is the live one, and
    // presenting our used refresh token would revoke the session.
    const stored = (await this.store.load()) ?? null;
    if (stored && this.tokens && stored.refreshToken !== this.tokens.refreshToken) {
      await this.adopt(stored);
    }
    const t = this.tokens;
    if (!t) return null;
    if (stale !== undefined && t.accessToken !== stale && t.expiresAt - this.now() > this.margin(t)) {
      return t.accessToken;
    }
    try {
      const pair = await this.refreshCall(t.refreshToken);
      // A logout while the refresh was in flight wins.
      if (this.tokens !== t) return this.tokens?.accessToken ?? null;
      await this.setPair(pair);
      return pair.access_token;
    } catch (err) {
      if (err instanceof RtchatError && err.status === 401) {
        await this.clear("refresh_refused");
        return null;
      }
      this.failures++;
      this.schedule();
      throw err;
    }
  }

  /** How long before expiry the token counts as expiring: a share of its lifetime, at
   * least a second (clock and network), at most a minute. */
  private margin(t: StoredTokens): number {
    const lifetime = t.lifetimeMs ?? REFRESH_MARGIN_CAP_MS / REFRESH_AT_REMAINING_SHARE;
    return Math.min(REFRESH_MARGIN_CAP_MS, Math.max(1000, lifetime * REFRESH_AT_REMAINING_SHARE));
  }

  /** Plans the background refresh: when the margin starts, or after a failed attempt. */
  private schedule(): void {
    clearTimeout(this.timer);
    const t = this.tokens;
    if (!t || this.closed) return;
    let delay = Math.max(0, t.expiresAt - this.now() - this.margin(t));
    if (this.failures > 0) delay = Math.min(delay, backoffDelay(REFRESH_RETRY, this.failures) + 500);
    if (delay > MAX_TIMER_MS) {
      this.timer = setTimeout(() => this.schedule(), MAX_TIMER_MS);
      (this.timer as { unref?: () => void }).unref?.();
      return;
    }
    this.timer = setTimeout(() => {
      this.refresh(t.accessToken).catch(() => {
        // A network failure: doRefresh planned the retry.
      });
    }, delay);
    // Node: a pending refresh must not keep a finished program alive.
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Stops the background refresh (the client is closed). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
