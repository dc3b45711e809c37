"""Schemathesis hooks for .ci/docs-checks: teach the generator the rules of rtchat's API that
JSON Schema cannot state, so that a *positive* case (one that schemathesis promises is valid)
really is valid and `positive_data_acceptance` tests the server rather than the generator.

Each rule below is documented in openapi.yaml's descriptions; none of them is expressible in
a schema, because it relates two parameters or refers to what exists in the database:

- POST /chats: `participant_ids` must name existing users, and a private chat exactly one
  other user (else 422);
- POST /chats/{chat_id}/members: `user_ids` must name existing users (else 422);
- GET /chats: `before` must be one of the caller's chats (else 422);
- GET /chats/{chat_id}/messages: `before` and `after` not together (else 422);
- POST /chats/{chat_id}/read: `message_id` must be a message of that chat (else 422);
- POST /chats/{chat_id}/messages: `reply_to` must be a message of that chat and `mentions`
  its members (else 422); PATCH /chats/{chat_id}/messages/{message_id}: `mentions` too;
- PUT and DELETE .../reactions/{emoji}: the emoji is at most 32 bytes of UTF-8 (the schema's
  `maxLength` counts characters);
- GET /events: `since` must not be past the caller's latest seq (else 410);
- GET /presence: `user_ids` are positive 64-bit integers (the pattern cannot bound a number);
- GET /search/messages: `q` has 1..10 words, a word being a run of letters or digits (a
  pattern cannot count words in every script).

Only positive cases are touched: negative cases, and every check, stay as schemathesis makes
them. The values come from the fixture that .ci/docs-checks creates (environment below) or,
where they change during the run, from a read-only request to the server.
"""

from __future__ import annotations

import os

import requests
import schemathesis
from schemathesis.generation.modes import GenerationMode

BASE = os.environ["RTCHAT_FUZZ_BASE"]
EMAIL = os.environ["RTCHAT_FUZZ_EMAIL"]
PASSWORD = os.environ["RTCHAT_FUZZ_PASSWORD"]
# The fuzzing user's id first, then the other registered users.
USER_IDS = [int(i) for i in os.environ["RTCHAT_FUZZ_USER_IDS"].split(",")]
ME, OTHERS = USER_IDS[0], USER_IDS[1:]
# The fuzzing user's latest seq when the run started; seqs only grow during a run.
MIN_LATEST_SEQ = int(os.environ["RTCHAT_FUZZ_SEQ"])

# Look-ups are local and small; this bounds each one.
LOOKUP_TIMEOUT = 10


def is_positive(case) -> bool:
    meta = case.meta
    # Explicit examples from the spec (no meta) are meant to be valid too.
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


def as_int(value: object) -> int | None:
    """A generated integer, whether it came as a number or (in a query or path) as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON's 42.0 is the integer 42
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


_token: str | None = None


def login() -> str:
    response = requests.post(
        BASE + "/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=LOOKUP_TIMEOUT
    )
    response.raise_for_status()
    return response.json()["access_token"]


def lookup(path: str) -> tuple[int, object]:
    """A read-only GET as the fuzzing user: (status, JSON body or None). Logs in again when
    the session was ended (the fuzzing calls POST /auth/logout)."""
    global _token
    for _ in range(2):
        if _token is None:
            _token = login()
        response = requests.get(
            BASE + path, headers={"Authorization": f"Bearer {_token}"}, timeout=LOOKUP_TIMEOUT
        )
        if response.status_code != 401:
            break
        _token = None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def known_user(value: object) -> int:
    """An existing user's id, chosen by the generated value so variety survives."""
    n = as_int(value)
    return USER_IDS[n % len(USER_IDS)] if n is not None else ME


def chat_messages(case) -> list[int] | None:
    """The ids of the messages of the case's chat, or None when the caller cannot see it."""
    chat_id = as_int((case.path_parameters or {}).get("chat_id"))
    if chat_id is None:
        return None
    status, page = lookup(f"/chats/{chat_id}/messages?limit=100")
    return [m["id"] for m in page["messages"]] if status == 200 else None


def existing_participants(case) -> None:
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("participant_ids"), list):
        return
    mapped = [known_user(v) for v in body["participant_ids"]]
    if body.get("type") == "private":
        others = sorted(set(mapped) - {ME})
        # The caller's own id may come along: it is ignored, as documented.
        body["participant_ids"] = [others[0] if others else OTHERS[0]] + [ME] * (ME in mapped)
    else:
        body["participant_ids"] = mapped


def existing_members(case) -> None:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("user_ids"), list):
        body["user_ids"] = [known_user(v) for v in body["user_ids"]]


def own_chat_cursor(case) -> None:
    query = case.query
    before = as_int((query or {}).get("before"))
    if before is None:
        return
    status, body = lookup("/chats?limit=100")
    chats = [c["id"] for c in body["chats"]] if status == 200 else []
    if chats:
        query["before"] = chats[before % len(chats)]
    else:
        del query["before"]


def one_cursor(case) -> None:
    query = case.query
    if query and "before" in query and "after" in query:
        # Keep one of the two, chosen by the generated value.
        drop = "after" if (as_int(query["before"]) or 0) % 2 else "before"
        del query[drop]


def message_of_the_chat(case) -> None:
    body = case.body
    n = as_int(body.get("message_id")) if isinstance(body, dict) else None
    ids = chat_messages(case)
    if n is not None and ids:
        body["message_id"] = ids[n % len(ids)]


def chat_members(case) -> list[int] | None:
    """The members of the case's chat, or None when the caller cannot see it."""
    chat_id = as_int((case.path_parameters or {}).get("chat_id"))
    if chat_id is None:
        return None
    status, chat = lookup(f"/chats/{chat_id}")
    return chat["participant_ids"] if status == 200 else None


def members_mentioned(case) -> None:
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("mentions"), list):
        return
    members = chat_members(case) or [ME]
    body["mentions"] = [members[(as_int(v) or 0) % len(members)] for v in body["mentions"]]


def reply_in_the_chat(case) -> None:
    members_mentioned(case)
    body = case.body
    n = as_int(body.get("reply_to")) if isinstance(body, dict) else None
    if n is None:
        return
    ids = chat_messages(case)
    if ids:
        body["reply_to"] = ids[n % len(ids)]
    elif ids == []:
        del body["reply_to"]  # a visible chat without messages: no reply is valid


def emoji_in_32_bytes(case) -> None:
    params = case.path_parameters or {}
    emoji = params.get("emoji")
    if isinstance(emoji, str):
        while len(emoji.encode("utf-8", "surrogatepass")) > 32:
            emoji = emoji[:-1]
        params["emoji"] = emoji


def seen_seq(case) -> None:
    query = case.query
    since = as_int((query or {}).get("since"))
    if since is not None:
        query["since"] = since % (MIN_LATEST_SEQ + 1)


I64_MAX = 2**63 - 1
MAX_SEARCH_WORDS = 10


def positive_ids(case) -> None:
    query = case.query
    raw = (query or {}).get("user_ids")
    if isinstance(raw, str):
        ids = [as_int(v.strip()) or 0 for v in raw.split(",")]
        query["user_ids"] = ",".join(str(n % I64_MAX or 1) for n in ids)


def searchable_words(case) -> None:
    query = case.query
    q = (query or {}).get("q")
    if isinstance(q, str):
        # ASCII letters and digits are words in the server's sense in every case; the
        # Unicode rules have their own tests (tests/api/hostile/search.rs).
        words = "".join(c if c.isascii() and c.isalnum() else " " for c in q).split()
        query["q"] = " ".join(words[:MAX_SEARCH_WORDS]) or "a"


# (method, path template) -> the rule that makes a valid-by-schema case valid for the server.
RULES = {
    ("POST", "/chats"): existing_participants,
    ("POST", "/chats/{chat_id}/members"): existing_members,
    ("GET", "/chats"): own_chat_cursor,
    ("GET", "/chats/{chat_id}/messages"): one_cursor,
    ("POST", "/chats/{chat_id}/read"): message_of_the_chat,
    ("POST", "/chats/{chat_id}/messages"): reply_in_the_chat,
    ("PATCH", "/chats/{chat_id}/messages/{message_id}"): members_mentioned,
    ("PUT", "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}"): emoji_in_32_bytes,
    ("DELETE", "/chats/{chat_id}/messages/{message_id}/reactions/{emoji}"): emoji_in_32_bytes,
    ("GET", "/events"): seen_seq,
    ("GET", "/presence"): positive_ids,
    ("GET", "/search/messages"): searchable_words,
}


def rule_for(case):
    return RULES.get((case.operation.method.upper(), case.operation.path))


def has_no_valid_form(case) -> bool:
    """A read cursor in a visible chat without messages: no body is valid, so a positive case
    there cannot exist (a chat the caller cannot see stays: that is a valid 404)."""
    if (case.operation.method.upper(), case.operation.path) != ("POST", "/chats/{chat_id}/read"):
        return False
    return chat_messages(case) == []


@schemathesis.hook
def filter_case(ctx, case):
    return not (is_positive(case) and has_no_valid_form(case))


@schemathesis.hook
def map_case(ctx, case):
    rule = rule_for(case)
    if rule is not None and is_positive(case):
        rule(case)
    return case


@schemathesis.hook
def before_add_examples(ctx, examples):
    """The spec's own examples name ids of a story (chat 10, message 42) that this database
    does not have: the same rules fit them to it."""
    for case in list(examples):
        if has_no_valid_form(case):
            examples.remove(case)
            continue
        rule = rule_for(case)
        if rule is not None:
            rule(case)
