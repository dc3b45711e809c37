// The one error type the client throws: an HTTP error in rtchat's envelope, or a network
// failure, with what a caller needs to decide what to do next.
import type { FieldError } from "./types.js";

/** `status` of an error that never got an HTTP answer (DNS, refused, reset, timeout). */
export const NETWORK_ERROR_STATUS = 0;

export class RtchatError extends Error {
  /** The HTTP status, or 0 when the request got no answer. */
  readonly status: number;
  /** rtchat's stable snake_case code (`not_found`, `rate_limited`, ...); `network_error`
   * when there was no answer, `aborted` when the caller's signal fired, `http_<status>` when
   * the body was not rtchat's envelope (a proxy's page). */
  readonly code: string;
  /** The server's message for humans. */
  readonly detail: string;
  /** The failing fields of a `422 validation_error`, else empty. */
  readonly errors: readonly FieldError[];
  /** Seconds to wait from `Retry-After` (429, 503), if the server sent one. */
  readonly retryAfter: number | undefined;

  constructor(init: {
    status: number;
    code: string;
    detail: string;
    errors?: readonly FieldError[];
    retryAfter?: number | undefined;
    cause?: unknown;
  }) {
    super(`${init.status ? `${init.status} ` : ""}${init.code}: ${init.detail}`, { cause: init.cause });
    this.name = "RtchatError";
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.errors = init.errors ?? [];
    this.retryAfter = init.retryAfter;
  }

  /** True for failures where the request may not have reached the server or the server
   * failed transiently: no answer, 5xx (`unavailable`, `internal_error`, a proxy's 502). */
  get isTransient(): boolean {
    return this.status === NETWORK_ERROR_STATUS || this.status >= 500;
  }
}

/** Builds an RtchatError from a non-2xx answer. */
export function errorFromResponse(status: number, statusText: string, headers: Headers, text: string): RtchatError {
  const retryAfterHeader = headers.get("retry-after")?.trim();
  const retryAfter =
    retryAfterHeader !== undefined && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (isEnvelope(body)) {
    return new RtchatError({
      status,
      code: body.code,
      detail: body.detail,
      errors: Array.isArray(body.errors) ? body.errors : [],
      retryAfter,
    });
  }
  return new RtchatError({
    status,
    code: `http_${status}`,
    detail: statusText || "the answer was not an rtchat error",
    retryAfter,
  });
}

function isEnvelope(body: unknown): body is { code: string; detail: string; errors?: FieldError[] } {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { code?: unknown }).code === "string" &&
    typeof (body as { detail?: unknown }).detail === "string"
  );
}

export function networkError(cause: unknown): RtchatError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new RtchatError({ status: NETWORK_ERROR_STATUS, code: "network_error", detail, cause });
}

export function abortedError(cause: unknown): RtchatError {
  return new RtchatError({ status: NETWORK_ERROR_STATUS, code: "aborted", detail: "the request was aborted", cause });
}
