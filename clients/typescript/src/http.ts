// The HTTP edge of the client: one `request` that adds the bearer token, sends and reads
// JSON, bounds every request with a timeout, refreshes the token once after a 401, and waits
// out a 429 `rate_limited` when its `Retry-After` is short.
import { RtchatError, abortedError, errorFromResponse, networkError } from "./errors.js";
import type { Session } from "./session.js";
import { sleep } from "./util.js";

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export type QueryValue = string | number | boolean | null | undefined | readonly (string | number)[];

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  /** Sent as JSON. */
  body?: unknown;
  /** Send the access token (default true). */
  auth?: boolean;
  /** What the 2xx body is: JSON (default), text, or nothing to read. */
  accept?: "json" | "text";
  signal?: AbortSignal | undefined;
}

export interface HttpOptions {
  baseUrl: string;
  fetch: typeof fetch;
  /** Each request's bound, in ms. */
  timeoutMs: number;
  /** How many times a 429 is waited out before it is thrown. */
  rateLimitRetries: number;
  /** The longest `Retry-After` (seconds) worth waiting for; a longer one is thrown at once. */
  maxRetryAfterSecs: number;
}

export class Http {
  constructor(
    readonly options: HttpOptions,
    private readonly session: Session,
  ) {}

  /** `path` with its `{name}` segments filled in, percent-encoded. */
  static fill(template: string, params: Record<string, string | number>): string {
    return template.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = params[name];
      if (value === undefined) throw new TypeError(`missing path parameter ${name}`);
      return encodeURIComponent(String(value));
    });
  }

  url(path: string, query?: Record<string, QueryValue>): string {
    const url = new URL(path.replace(/^\//, ""), this.options.baseUrl.replace(/\/*$/, "/"));
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    return url.toString();
  }

  async request<T>(method: Method, path: string, o: RequestOptions = {}): Promise<T> {
    const auth = o.auth ?? true;
    let refreshed = false;
    let rateLimited = 0;
    for (;;) {
      const token = auth ? await this.session.accessToken() : null;
      if (auth && !token) {
        throw new RtchatError({ status: 401, code: "unauthorized", detail: "not signed in" });
      }
      const { response, text } = await this.exchange(method, path, o, token);
      if (response.ok) return this.parse(response, text, o.accept ?? "json") as T;
      const err = errorFromResponse(response.status, response.statusText, response.headers, text);
      if (response.status === 401 && auth && !refreshed) {
        // The token may have expired in flight, or been replaced elsewhere: one refresh,
        // then one retry. A second 401 is the answer.
        refreshed = true;
        if (await this.session.refresh(token ?? undefined)) continue;
      } else if (
        // A 429 `rate_limited` means the server did nothing, so retrying is safe for every
        // method; only short waits are taken, a login lockout of minutes is the caller's call.
        response.status === 429 &&
        err.code === "rate_limited" &&
        rateLimited < this.options.rateLimitRetries &&
        (err.retryAfter ?? 1) <= this.options.maxRetryAfterSecs
      ) {
        rateLimited++;
        await sleep((err.retryAfter ?? 1) * 1000, o.signal).catch((reason: unknown) => {
          throw abortedError(reason);
        });
        continue;
      }
      throw err;
    }
  }

  /** One fetch and its body, bounded by the timeout and the caller's signal. */
  private async exchange(
    method: Method,
    path: string,
    o: RequestOptions,
    token: string | null,
  ): Promise<{ response: Response; text: string }> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(o.body);
    }
    if (o.signal?.aborted) throw abortedError(o.signal.reason);
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`no answer within ${this.options.timeoutMs} ms`)),
      this.options.timeoutMs,
    );
    const onAbort = () => controller.abort(o.signal?.reason);
    o.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await this.options.fetch(this.url(path, o.query), {
        method,
        headers,
        body: body ?? null,
        signal: controller.signal,
      });
      // The body is read inside the same bound: a connection can die halfway through it.
      const text = await response.text();
      return { response, text };
    } catch (cause) {
      if (o.signal?.aborted) throw abortedError(cause);
      throw networkError(controller.signal.aborted ? controller.signal.reason : cause);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
    }
  }

  private parse(response: Response, text: string, accept: "json" | "text"): unknown {
    if (accept === "text") return text;
    if (response.status === 204 || text === "") return undefined;
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw new RtchatError({
        status: response.status,
        code: "invalid_response",
        detail: "the answer was not JSON",
        cause,
      });
    }
  }
}
