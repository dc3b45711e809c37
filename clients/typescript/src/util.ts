// Small helpers shared by the modules: backoff with jitter, sleeping that an AbortSignal can
// cut short, ids for idempotent sends, and reading a JWT's claims without verifying it.

/** Exponential backoff with "full jitter": a random delay in [0, min(max, base * 2^attempt)],
 * so clients that lost the same server do not come back in lockstep. */
export interface Backoff {
  /** The ceiling of the first retry's delay, in ms. */
  baseMs: number;
  /** The largest ceiling, in ms. */
  maxMs: number;
}

export function backoffDelay(backoff: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const reason = () => (signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    if (signal?.aborted) {
      reject(reason());
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(reason());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A random UUID v4 for `client_id`. Node 18 has no global `crypto.randomUUID` (only 19+ has
 * the global), so this falls back to `getRandomValues`, then to Math.random: a `client_id`
 * only has to be unique among one sender's messages. */
export function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The claims of a JWT, unverified (the server verifies; the client only reads `sub` and
 * `exp` to key its cursor and to plan the refresh). Undefined when it is not a JWT. */
export function jwtClaims(token: string): { sub?: string; exp?: number } | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const claims: unknown = JSON.parse(atob(padded));
    return typeof claims === "object" && claims !== null ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** What the Web Storage stores need of `localStorage`/`sessionStorage` (any look-alike
 * works, so Node users need no DOM types). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A tiny typed listener set. */
export class Listeners<T extends unknown[]> {
  private readonly set = new Set<(...args: T) => void>();
  add(listener: (...args: T) => void): () => void {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }
  emit(...args: T): void {
    for (const listener of [...this.set]) listener(...args);
  }
  get size(): number {
    return this.set.size;
  }
}
