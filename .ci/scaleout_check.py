"""Scale-out checks against real processes, driven by .ci/scaleout-check.

Topology (started by the bash script, passed in the environment):
  A = rtchat on RTCHAT1_PORT, B = rtchat on RTCHAT2_PORT, both on one PostgreSQL cluster
  (DATABASE_URL, JWT_SECRET), nginx on NGINX_PORT in front of both.

Tests, in order (each bounded in time; every wait has a timeout):
  1. nginx        REST and WebSocket through nginx.
  2. cross        sockets on A, on B, through nginx, and one hopping between B and A every
                  0.25 s; concurrent senders alternate A/B into overlapping chats; every
                  socket ends with exactly the user's log, in seq order, equal to GET
                  /events; then single messages measure the A->B and B->A wake-up latency.
  3. sigkill      sockets directly on A; senders through B (and one through nginx); kill -9
                  A mid-stream; the sockets reconnect to B with since=<last seq>; exactly
                  once; restart A.
  4. pg-restart   senders through A and B (retrying failures with the same client_id)
                  while PostgreSQL stops twice (-m fast, then -m immediate); both processes
                  recover by themselves; exactly once; every acknowledged send is in the
                  history, none twice; repeated client_ids answer 200; wake-ups work again.
  5. sigterm      a third process C: its 16 sockets get 1001, it exits 0 within the grace.

Prints what each test did and saw, then "scaleout: N passed, N failed".
"""

import asyncio
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ENV = os.environ
WORK = ENV["SCALEOUT_WORK"]
RTCHAT_BIN = ENV["RTCHAT_BIN"]
A = f"http://127.0.0.1:{ENV['RTCHAT1_PORT']}"
B = f"http://127.0.0.1:{ENV['RTCHAT2_PORT']}"
C_PORT = ENV["RTCHAT3_PORT"]
C = f"http://127.0.0.1:{C_PORT}"
NGX = f"http://127.0.0.1:{ENV['NGINX_PORT']}"
NAMES = {A: "A", B: "B", NGX: "nginx", C: "C"}
PG_CTL = ENV["PG_CTL"]
PGDATA = ENV["PGDATA"]
PG_LOG = ENV["PG_LOG"]
GRACE_SECS = float(ENV.get("RTCHAT_SHUTDOWN_GRACE_SECS", "5"))
RUN = uuid.uuid4().hex[:8]  # makes emails unique per run
PASSWORD = "correct horse battery staple"

T0 = time.monotonic()

# Bounds of the waits (seconds).
TEST_TIMEOUT = 150  # one whole test
READY_TIMEOUT = 30  # a process answering /readyz 200
CONVERGE_TIMEOUT = 20  # sockets catching up with the log after the last send
SEND_DEADLINE = 45  # one message, retries included
LIVE_LATENCY_LIMIT = 2.0  # a single event, committed on one process, on the other's sockets


def log(msg):
    print(f"[scaleout {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def ws_base(base):
    return "ws" + base[len("http"):]


def now():
    return time.monotonic()


async def wait_until(pred, timeout, what, interval=0.05):
    """Polls `pred` until it is true; CheckFailed naming `what` after `timeout` seconds."""
    deadline = now() + timeout
    while True:
        if pred():
            return
        if now() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


# ------------------------------------------------------------------------------ processes

CHILDREN = []  # processes this checker started (A after the kill, C)


def pid_file(n):
    return os.path.join(WORK, f"rtchat{n}.pid")


def read_pid(n):
    with open(pid_file(n)) as f:
        return int(f.read().strip())


def spawn_rtchat(n, port, **extra_env):
    """Starts rtchat number `n` on `port` with the shared DATABASE_URL and JWT_SECRET."""
    env = dict(ENV, RTCHAT_ADDR=f"127.0.0.1:{port}", **extra_env)
    out = open(os.path.join(WORK, f"rtchat{n}.log"), "ab")
    out.write(f"---- started by scaleout_check.py on 127.0.0.1:{port}\n".encode())
    out.flush()
    proc = subprocess.Popen([RTCHAT_BIN], env=env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    out.close()
    CHILDREN.append(proc)
    with open(pid_file(n), "w") as f:
        f.write(str(proc.pid))
    return proc


def stop_children():
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.terminate()
    for proc in CHILDREN:
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()


async def run_pg_ctl(*args, timeout=60):
    """Runs pg_ctl as the postgres user without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        "runuser", "-u", "postgres", "--", PG_CTL, "-D", PGDATA, *args,
        cwd=os.path.dirname(PGDATA),  # postgres may not be allowed into our cwd
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        raise CheckFailed(f"pg_ctl {' '.join(args)} did not finish in {timeout}s")
    if proc.returncode != 0:
        raise CheckFailed(f"pg_ctl {' '.join(args)} failed: {out.decode(errors='replace')[-500:]}")


# ------------------------------------------------------------------------------ REST

class User:
    def __init__(self, label, id, email, token):
        self.label, self.id, self.email, self.token = label, id, email, token

    def __repr__(self):
        return f"{self.label}(id {self.id})"


class Api:
    """REST calls with bounded retries for 429 (Retry-After) and, where asked, for
    transient failures (connection errors, 502/503/504)."""

    def __init__(self):
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))

    async def call(self, method, url, token=None, body=None, expect=(200,), transient_retries=0):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        deadline = now() + 30
        attempt = 0
        while True:
            attempt += 1
            try:
                r = await self.http.request(method, url, headers=headers, json=body)
            except httpx.HTTPError as e:
                if attempt <= transient_retries:
                    await asyncio.sleep(0.3)
                    continue
                raise CheckFailed(f"{method} {path_of(url)}: {type(e).__name__}: {e}")
            if r.status_code == 429 and now() < deadline:
                await asyncio.sleep(min(float(r.headers.get("retry-after", "1")), 3.0))
                continue
            if r.status_code in (502, 503, 504) and attempt <= transient_retries:
                await asyncio.sleep(0.3)
                continue
            if expect and r.status_code not in expect:
                raise CheckFailed(f"{method} {path_of(url)} answered {r.status_code}: {r.text[:300]}")
            return r

    async def close(self):
        await self.http.aclose()


def path_of(url):
    # Never print query strings (they may carry a token); paths are enough.
    return "/" + url.split("/", 3)[3].split("?")[0] if url.count("/") >= 3 else url


async def new_user(api, base, label):
    email = f"{label}-{RUN}@example.com"
    r = await api.call("POST", f"{base}/auth/register", body={"email": email, "name": label,
                       "password": PASSWORD}, expect=(201,))
    uid = r.json()["id"]
    r = await api.call("POST", f"{base}/auth/login", body={"email": email, "password": PASSWORD},
                       expect=(200,))
    return User(label, uid, email, r.json()["access_token"])


async def new_users(api, base, labels):
    return list(await asyncio.gather(*(new_user(api, base, l) for l in labels)))


async def create_chat(api, base, creator, others, title=None):
    kind = "group" if title is not None else "private"
    body = {"type": kind, "participant_ids": [u.id for u in others]}
    if title is not None:
        body["title"] = title
    r = await api.call("POST", f"{base}/chats", creator.token, body, expect=(201,))
    return r.json()["id"]


async def get_events(api, base, user, since):
    """The user's whole log after `since`, paging with limit=100 and has_more."""
    frames = []
    for _ in range(1000):
        r = await api.call("GET", f"{base}/events?since={since}&limit=100", user.token,
                           expect=(200,), transient_retries=5)
        page = r.json()
        check(isinstance(page.get("events"), list) and isinstance(page.get("has_more"), bool),
              f"GET /events: unexpected shape {str(page)[:200]}")
        frames.extend(page["events"])
        if page["events"]:
            since = page["events"][-1]["seq"]
        if not page["has_more"]:
            return frames
        check(page["events"], "GET /events: has_more with an empty page")
    raise CheckFailed("GET /events: more than 1000 pages")


async def chat_history(api, base, user, chat_id):
    messages, after = [], 0
    for _ in range(1000):
        r = await api.call("GET", f"{base}/chats/{chat_id}/messages?after={after}&limit=100",
                           user.token, expect=(200,), transient_retries=5)
        page = r.json()
        messages.extend(page["messages"])
        if page["messages"]:
            after = page["messages"][-1]["id"]
        if not page["has_more"]:
            return messages
    raise CheckFailed("GET /chats/{id}/messages: more than 1000 pages")


async def wait_ready(api, base, timeout=READY_TIMEOUT):
    """Waits for GET /readyz 200; returns the seconds it took."""
    start = now()
    deadline = start + timeout
    last = None
    while now() < deadline:
        try:
            r = await api.http.get(f"{base}/readyz", timeout=3.0)
            last = r.status_code
            if r.status_code == 200:
                return now() - start
        except httpx.HTTPError as e:
            last = type(e).__name__
        await asyncio.sleep(0.1)
    raise CheckFailed(f"{NAMES.get(base, base)} /readyz not 200 within {timeout}s (last: {last})")


# ------------------------------------------------------------------------------ sending

class SendStats:
    def __init__(self):
        self.created = 0  # 201 on the first attempt
        self.created_after_retry = 0  # 201 after failed attempts (the first never stored)
        self.replayed = 0  # 200 after failed attempts: the original had been stored
        self.failed_attempts = collections.Counter()  # status or error -> count
        self.failures = []  # (attempt start, seconds it took, status or error)
        self.longest = 0.0  # the longest time from first attempt to acknowledgement
        self.sent = []  # acknowledged messages (dicts)
        self.problems = []

    def summary(self):
        failed = ", ".join(f"{k}: {v}" for k, v in sorted(self.failed_attempts.items(), key=str))
        return (f"{len(self.sent)} acknowledged ({self.created} 201 first try, "
                f"{self.created_after_retry} 201 after a retry, {self.replayed} 200 = original "
                f"already stored); failed attempts: {failed or 'none'}; longest send "
                f"{self.longest:.2f}s")

    def failures_between(self, start, end):
        got = collections.Counter(st for t, _, st in self.failures if start <= t <= end)
        slowest = max((d for t, d, _ in self.failures if start <= t <= end), default=0.0)
        return (", ".join(f"{k}: {v}" for k, v in sorted(got.items(), key=str)) or "none") + \
            (f" (slowest failure answered in {slowest:.2f}s)" if got else "")


async def send_message(api, user, chat_id, text, base, stats):
    """POST a message, retrying transient failures with the same client_id until acknowledged."""
    client_id = str(uuid.uuid4())
    first = now()
    deadline = first + SEND_DEADLINE
    attempts = 0
    while True:
        attempts += 1
        t_attempt = now()
        try:
            r = await api.http.post(f"{base}/chats/{chat_id}/messages",
                                    headers={"authorization": f"Bearer {user.token}"},
                                    json={"text": text, "client_id": client_id})
            status = r.status_code
        except httpx.HTTPError as e:
            r, status = None, type(e).__name__
        if status in (200, 201):
            msg = r.json()
            if msg.get("client_id") != client_id or msg.get("chat_id") != chat_id:
                stats.problems.append(f"send answered a different message: {msg}")
            if status == 201:
                if attempts == 1:
                    stats.created += 1
                else:
                    stats.created_after_retry += 1
            elif attempts == 1:
                stats.problems.append(f"first send of a fresh client_id answered 200: {msg}")
            else:
                stats.replayed += 1
            stats.sent.append(msg)
            stats.longest = max(stats.longest, now() - first)
            return msg
        stats.failed_attempts[status] += 1
        stats.failures.append((t_attempt, now() - t_attempt, status))
        if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
            raise CheckFailed(f"send by {user} to chat {chat_id} via {NAMES[base]} answered "
                              f"{status}: {r.text[:200]}")
        if now() > deadline:
            raise CheckFailed(f"send by {user} to chat {chat_id} not acknowledged within "
                              f"{SEND_DEADLINE}s (last: {status})")
        delay = 0.1 * min(attempts, 5)
        if status == 429 and r is not None:
            delay = min(float(r.headers.get("retry-after", "1")), 3.0)
        await asyncio.sleep(delay)


async def run_sender(api, user, plan, stats, pace=0.0, label=""):
    """Sends one message per (chat_id, base) of `plan`, in order."""
    for i, (chat_id, base) in enumerate(plan):
        await send_message(api, user, chat_id, f"{label or user.label} #{i} via {NAMES[base]}",
                           base, stats)
        if pace:
            await asyncio.sleep(pace)


# ------------------------------------------------------------------------------ receiving

class Receiver:
    """One WebSocket client of one user. It connects to `home`; when the connection ends
    it reconnects with since=<last seq seen>, to `fallback` if one is set. It records every
    durable frame and flags any seq that is not the next one (duplicate or gap)."""

    def __init__(self, user, home, since=None, fallback=None, label=None, flap=None):
        self.user, self.home, self.fallback = user, home, fallback
        self.label = label or f"{user.label}@{NAMES[home]}"
        # flap=(seconds, [bases]): close our own socket every `seconds` and reconnect with
        # since to the next base in turn (replay-to-live switches while events flow).
        self.flap = flap
        self.current = None  # the base of the open connection
        self.initial_since = since
        self.start_seq = None  # the seq just before the first expected event
        self.last_seq = None
        self.frames = []  # durable frames, in arrival order
        self.arrival = {}  # message id (new_message) -> monotonic arrival time
        self.violations = []
        self.connections = []  # (time, base) of every successful connect
        self.drops = []  # (time, base, close code or error) of every ended/failed attempt
        self.ready = asyncio.Event()
        self.stopping = False
        self.stopped = asyncio.Event()
        self.ws = None
        self.task = None
        self.switched = False
        self.flaps = 0

    def start(self):
        self.task = asyncio.create_task(self._run())
        return self

    @property
    def reconnects(self):
        return max(0, len(self.connections) - 1 - self.flaps)

    def live_count(self):
        return 0 if self.last_seq is None else self.last_seq - self.start_seq

    async def _run(self):
        backoff = 0.1
        while not self.stopping:
            base = self.fallback if (self.switched and self.fallback) else self.home
            if self.flap:
                base = self.flap[1][len(self.connections) % len(self.flap[1])]
            since = self.initial_since if self.last_seq is None else self.last_seq
            url = f"{ws_base(base)}/ws/notif?token={self.user.token}"
            if since is not None:
                url += f"&since={since}"
            code = None
            try:
                async with connect(url, open_timeout=5, close_timeout=2, max_size=2 ** 24) as ws:
                    self.ws = ws
                    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if first.get("type") != "ready":
                        self.violations.append(f"first frame is not ready: {first}")
                    elif first["payload"].get("user_id") != self.user.id or \
                            "heartbeat_interval_ms" not in first["payload"]:
                        self.violations.append(f"bad ready frame: {first}")
                    if self.last_seq is None:
                        ready_seq = first.get("payload", {}).get("seq", 0)
                        self.start_seq = since if since is not None else ready_seq
                        self.last_seq = self.start_seq
                    self.connections.append((now(), base))
                    self.current = base
                    self.ready.set()
                    backoff = 0.1
                    flapper = None
                    if self.flap:
                        flapper = asyncio.get_running_loop().call_later(
                            self.flap[0], lambda: asyncio.ensure_future(ws.close()))
                    try:
                        async for raw in ws:
                            self._handle(raw)
                    finally:
                        if flapper:
                            flapper.cancel()
                    code = ws.close_code
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd is not None else 1006
            except InvalidStatus as e:
                code = f"HTTP {e.response.status_code}"
            except (OSError, asyncio.TimeoutError) as e:
                code = type(e).__name__
            except Exception as e:  # any other handshake failure: record it and retry
                code = f"{type(e).__name__}: {e}"[:120]
            finally:
                self.ws = None
                self.current = None
            if self.stopping:
                break
            if self.flap and code == 1000:
                self.flaps += 1
                continue  # our own close: reconnect at once
            self.drops.append((now(), base, code))
            if self.fallback:
                self.switched = True
            try:  # the backoff, cut short by stop()
                await asyncio.wait_for(self.stopped.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, 1.0)

    def _handle(self, raw):
        if not isinstance(raw, str):
            self.violations.append("binary frame from the server")
            return
        frame = json.loads(raw)
        if "seq" in frame:
            seq = frame["seq"]
            if seq != self.last_seq + 1:
                kind = "duplicate/old" if seq <= self.last_seq else "gap"
                self.violations.append(f"{kind}: seq {seq} after {self.last_seq}")
            self.frames.append(frame)
            self.last_seq = max(self.last_seq, seq)
            if frame.get("type") == "new_message":
                self.arrival.setdefault(frame["payload"]["id"], now())
        elif frame.get("type") in ("resync_required", "error"):
            self.violations.append(f"unexpected frame {frame}")
        # ready (on reconnect), pong, typing, presence: ephemeral, ignored

    async def stop(self):
        self.stopping = True
        self.stopped.set()
        ws = self.ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 3)
            except Exception:
                pass
        if self.task:
            try:
                await asyncio.wait_for(self.task, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()

    def describe(self):
        drops = ", ".join(f"{NAMES[b]}:{c}" for _, b, c in self.drops) or "none"
        flaps = f", {self.flaps} deliberate reconnects" if self.flap else ""
        return (f"{self.label}: {len(self.frames)} events (seq {self.start_seq + 1}.."
                f"{self.last_seq}), {self.reconnects} reconnects{flaps}, drops: {drops}")


async def start_receivers(receivers, timeout=15):
    for r in receivers:
        r.start()
    await wait_until(lambda: all(r.ready.is_set() for r in receivers), timeout,
                     "every socket's ready frame: " +
                     ", ".join(r.label for r in receivers if not r.ready.is_set()))


async def converge_and_verify(api, receivers, timeout=CONVERGE_TIMEOUT):
    """Waits until every socket holds its user's whole log, then checks each one equals
    GET /events after its starting point: seq consecutive, exactly once, in order. Returns
    the seconds the wait took and the REST logs by user id."""
    logs = {}
    for r in receivers:
        if r.user.id not in logs:
            logs[r.user.id] = await get_events(api, B, r.user, 0)
    targets = {r.label: (logs[r.user.id][-1]["seq"] if logs[r.user.id] else 0) for r in receivers}
    start = now()
    try:
        await wait_until(lambda: all(r.last_seq >= targets[r.label] for r in receivers), timeout,
                         "sockets to catch up with their logs")
    except CheckFailed:
        behind = [f"{r.label} at seq {r.last_seq} of {targets[r.label]}" for r in receivers
                  if r.last_seq < targets[r.label]]
        raise CheckFailed(f"after {timeout}s sockets still behind GET /events: " + "; ".join(behind))
    waited = now() - start
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive now
    for r in receivers:
        check(not r.violations, f"{r.label}: {r.violations[:5]}")
        expected = [f for f in logs[r.user.id] if f["seq"] > r.start_seq]
        got_seqs = [f["seq"] for f in r.frames]
        want_seqs = [f["seq"] for f in expected]
        check(want_seqs == list(range(r.start_seq + 1, r.start_seq + 1 + len(want_seqs))),
              f"GET /events for {r.user} is not consecutive after {r.start_seq}")
        check(got_seqs == want_seqs,
              f"{r.label}: socket seqs differ from GET /events: got {len(got_seqs)} "
              f"({got_seqs[:3]}..{got_seqs[-3:]}), want {len(want_seqs)}")
        for i, (got, want) in enumerate(zip(r.frames, expected)):
            check(got == want, f"{r.label}: frame {i} differs from GET /events: {got} != {want}")
    return waited, logs


def check_sends_in_logs(receivers, logs, members, stats):
    """Every acknowledged message is in each member's log exactly once (and on their
    sockets), and no (sender, client_id) appears twice."""
    for uid, frames in logs.items():
        seen = collections.Counter()
        ids = collections.Counter()
        for f in frames:
            if f["type"] == "new_message":
                p = f["payload"]
                seen[(p["sender_id"], p["client_id"])] += 1
                ids[p["id"]] += 1
        dup = [k for k, n in list(seen.items()) + list(ids.items()) if n > 1]
        check(not dup, f"user {uid}: a message appears more than once in GET /events: {dup[:3]}")
        for msg in stats.sent:
            if uid in members[msg["chat_id"]]:
                check(ids[msg["id"]] == 1,
                      f"user {uid}: acknowledged message {msg['id']} ({msg['text']!r}) is "
                      f"missing from GET /events")


async def resend_acknowledged(api, stats, users, count=12):
    """Sends `count` acknowledged messages again with their client_id, through the process
    that did not store them: each must answer 200 with the original and append no event
    (converge_and_verify afterwards would see the extra event)."""
    sample = stats.sent[:: max(1, len(stats.sent) // count)][:count]
    for i, msg in enumerate(sample):
        via = (A, B)[i % 2]
        r = await api.call("POST", f"{via}/chats/{msg['chat_id']}/messages",
                           users[msg["sender_id"]].token,
                           {"text": msg["text"], "client_id": msg["client_id"]},
                           expect=(200,), transient_retries=5)
        check(r.json() == msg, f"a repeated client_id answered {r.json()}, want {msg}")
    return (f"{len(sample)} acknowledged messages sent again with their client_id through A "
            f"and B: 200 with the original each time")


async def probe_latency(api, sender, chat_id, receivers, stats, rounds=6):
    """Sends single messages, alternately through B and A, with nothing else in flight, so
    only the cross-process wake-up can deliver them to the other process's sockets. Every
    socket in `receivers` must get each within 5 s; returns the latencies by direction and
    the worst one."""
    lat = {"A->B": [], "B->A": []}
    for i in range(rounds):
        via = (B, A)[i % 2]
        t0 = now()
        msg = await send_message(api, sender, chat_id, f"probe {i} via {NAMES[via]}", via, stats)
        try:
            await wait_until(lambda: all(msg["id"] in r.arrival for r in receivers), 5,
                             "a single message on every member's socket")
        except CheckFailed:
            missing = [f"{r.label} (on {NAMES.get(r.current, r.current)})" for r in receivers
                       if msg["id"] not in r.arrival]
            raise CheckFailed(f"a single message sent through {NAMES[via]} did not reach the "
                              f"sockets {missing} within 5s (cross-process wake-up)")
        for r in receivers:
            if r.current in (A, B) and r.current != via:
                lat[f"{NAMES[via]}->{NAMES[r.current]}"].append(r.arrival[msg["id"]] - t0)
    worst = max(lat["A->B"] + lat["B->A"])
    text = "; ".join(f"{k}: median {statistics.median(v) * 1000:.0f} ms, max "
                     f"{max(v) * 1000:.0f} ms ({len(v)} deliveries)" for k, v in lat.items() if v)
    check(worst < LIVE_LATENCY_LIMIT,
          f"cross-process delivery took {worst:.2f}s (limit {LIVE_LATENCY_LIMIT}s): {text}")
    return text


# ------------------------------------------------------------------------------ tests

async def test_nginx(api):
    """REST and WebSocket both work through nginx."""
    for path in ("/healthz", "/readyz"):
        await api.call("GET", f"{NGX}{path}", expect=(200,))
    r = await api.call("GET", f"{NGX}/no/such/path", expect=(404,))
    check(r.json().get("code") == "not_found", f"404 through nginx is not the API's: {r.text}")
    x, y = await new_users(api, NGX, ["ngx-x", "ngx-y"])
    log(f"  registered and logged in {x} and {y} through nginx")

    try:
        async with connect(f"{ws_base(NGX)}/ws/notif?token=not-a-jwt", open_timeout=5):
            raise CheckFailed("a WebSocket with a bad token was accepted through nginx")
    except InvalidStatus as e:
        check(e.response.status_code == 401,
              f"bad token through nginx: {e.response.status_code}, want 401")

    rx = Receiver(x, NGX, since=0, label="x@nginx")
    ry = Receiver(y, NGX, label="y@nginx")
    await start_receivers([rx, ry])
    try:
        chat_id = await create_chat(api, NGX, x, [y])
        stats = SendStats()
        msg = await send_message(api, x, chat_id, "Привет через nginx", NGX, stats)
        await wait_until(lambda: rx.live_count() >= 2 and ry.live_count() >= 2, 10,
                         "create_chat and new_message on both sockets through nginx")
        for r in (rx, ry):
            check(not r.violations, f"{r.label}: {r.violations}")
            types = [f["type"] for f in r.frames]
            check(types == ["create_chat", "new_message"], f"{r.label} got {types}")
            check(r.frames[1]["payload"] == msg, f"{r.label}: new_message payload {r.frames[1]} "
                  f"differs from the send's answer {msg}")
        rest = await get_events(api, NGX, y, ry.start_seq)
        check(rest == ry.frames, f"GET /events through nginx {rest} != socket frames {ry.frames}")
        history = await chat_history(api, NGX, x, chat_id)
        check([m["id"] for m in history] == [msg["id"]], f"history through nginx: {history}")
    finally:
        await rx.stop()
        await ry.stop()

    with open(ENV["NGINX_ACCESS_LOG"]) as f:
        access = f.read()
    check("token=" not in access and x.token not in access, "nginx access log contains a token")
    ws_lines = [l for l in access.splitlines() if "/ws/notif" in l]
    upstreams = collections.Counter(
        part.split("=", 1)[1] for l in access.splitlines() for part in l.split()
        if part.startswith("upstream=") and part != "upstream=-")
    check(any(" 101 " in l for l in ws_lines), "no 101 for /ws/notif in nginx's access log")
    log(f"  ready frames (user ids {rx.user.id}, {ry.user.id}), create_chat + new_message on "
        f"both sockets, GET /events equal, history equal; nginx spread requests over "
        f"{dict(upstreams)}; no token in its access log")


async def test_cross_process(api):
    """Concurrent senders alternating A/B into overlapping chats; sockets on A, B and nginx."""
    u = await new_users(api, A, [f"x{i}" for i in range(6)])
    chats = {
        "G1": (u[0], [u[1], u[2], u[3]], A),
        "G2": (u[3], [u[2], u[4], u[5]], B),
        "G3": (u[4], [u[0], u[2]], NGX),
        "P": (u[1], [u[5]], B),
    }
    ids, members = {}, {}
    for name, (creator, others, base) in chats.items():
        ids[name] = await create_chat(api, base, creator, others,
                                      title=None if name == "P" else name)
        members[ids[name]] = {creator.id} | {o.id for o in others}
    receivers = [
        Receiver(u[0], A, since=0), Receiver(u[1], B), Receiver(u[2], A, since=0),
        Receiver(u[2], B), Receiver(u[3], NGX, since=0), Receiver(u[4], B, since=0),
        Receiver(u[5], A),
        # Reconnects with since every 0.25 s, alternating B and A, while the stream flows.
        Receiver(u[3], B, label="x3@B/A flapping", flap=(0.25, [B, A])),
    ]
    await start_receivers(receivers)
    try:
        per_sender = 80
        senders = [  # (user, chats it alternates between)
            (u[0], ["G1", "G3"]), (u[1], ["P", "G1"]), (u[2], ["G1", "G2", "G3"]),
            (u[3], ["G2", "G1"]), (u[5], ["G2", "P"]),
        ]
        stats = SendStats()
        start = now()
        await asyncio.gather(*(
            run_sender(api, user, [(ids[cs[i % len(cs)]], (A, B)[(i + k) % 2])
                                   for i in range(per_sender)], stats)
            for k, (user, cs) in enumerate(senders)))
        send_secs = now() - start
        check(not stats.problems, stats.problems[:3])
        waited, logs = await converge_and_verify(api, receivers)
        check_sends_in_logs(receivers, logs, members, stats)
        log(f"  {len(senders)} senders x {per_sender} messages alternating A/B into 4 "
            f"overlapping chats in {send_secs:.1f}s; {stats.summary()}")
        log(f"  sockets caught up {waited:.2f}s after the last send; each equals GET /events:")
        for r in receivers:
            log(f"    {r.describe()}")

        # Wake-up latency of single events (the flapping socket is left out: it is not
        # connected all the time).
        g1 = [r for r in receivers if r.user.id in members[ids["G1"]] and not r.flap]
        text = await probe_latency(api, u[0], ids["G1"], g1, stats)
        log(f"  single messages, send start to arrival on the other process's sockets: {text}")
        await converge_and_verify(api, receivers, timeout=5)
    finally:
        for r in receivers:
            await r.stop()


async def test_sigkill(api):
    """kill -9 A while its sockets receive a stream sent through B."""
    k = await new_users(api, B, [f"k{i}" for i in range(4)])
    k1 = await create_chat(api, B, k[0], k[1:], title="K1")
    k2 = await create_chat(api, B, k[2], [k[3], k[0]], title="K2")
    members = {k1: {x.id for x in k}, k2: {k[0].id, k[2].id, k[3].id}}
    on_a = [Receiver(k[0], A, since=0, fallback=B), Receiver(k[1], A, fallback=B),
            Receiver(k[2], A, since=0, fallback=B), Receiver(k[3], A, fallback=B)]
    control = Receiver(k[0], B, label="k0@B (control)")
    # Through nginx: on A or B, whichever nginx picked; if A, it reconnects through nginx.
    via_nginx = Receiver(k[3], NGX, since=0)
    receivers = on_a + [control, via_nginx]
    await start_receivers(receivers)
    pid_a = read_pid(1)
    per_sender, pace = 60, 0.03
    total = per_sender * len(k)
    stats = SendStats()
    killed = False
    try:
        # k1 sends through nginx (so some of its sends are in flight on A when it dies, and
        # come back as 502 and are retried with the same client_id); the others through B.
        plans = [[((k1, k2)[i % 2] if x is not k[1] else k1, B if x is not k[1] else NGX)
                  for i in range(per_sender)] for x in k]
        senders = [asyncio.create_task(run_sender(api, x, plan, stats, pace))
                   for x, plan in zip(k, plans)]
        await wait_until(lambda: len(stats.sent) >= total // 3 or any(s.done() for s in senders),
                         60, "a third of the stream to be sent")
        try:
            await wait_until(lambda: all(r.live_count() >= 3 for r in on_a), 10,
                             "live events on the sockets of A")
        except CheckFailed:
            raise CheckFailed("sockets on A got no live events sent through B before the kill "
                              f"({[r.live_count() for r in on_a]}): cross-process delivery is "
                              "not working")
        sent_at_kill = len(stats.sent)
        seen_at_kill = {r.label: r.live_count() for r in on_a}
        t_kill = now()
        os.kill(pid_a, signal.SIGKILL)
        killed = True
        log(f"  kill -9 A (pid {pid_a}) at {t_kill - T0:.1f}s, after {sent_at_kill}/{total} "
            f"sends; events seen on A's sockets at that moment: {seen_at_kill}")
        await asyncio.wait_for(asyncio.gather(*senders), 90)
        t_done = now()
        check(not stats.problems, stats.problems[:3])
        await wait_until(lambda: all(r.reconnects >= 1 for r in on_a), 10,
                         "every socket of A to reconnect to B")
        waited, logs = await converge_and_verify(api, receivers)
        check_sends_in_logs(receivers, logs, members, stats)
        check(control.reconnects == 0, f"the control socket on B dropped: {control.drops}")
        log(f"  4 senders x {per_sender} (3 through B, 1 through nginx), {pace * 1000:.0f} ms "
            f"apart, finished {t_done - t_kill:.1f}s after the kill; {stats.summary()}")
        for r in on_a:
            t_back = r.connections[1][0] - t_kill
            log(f"    {r.describe()}; reconnected to B {t_back * 1000:.0f} ms after the kill, "
                f"{r.live_count() - seen_at_kill[r.label]} events after it")
        log(f"    {control.describe()}")
        log(f"    {via_nginx.describe()}")
        log(f"  every socket equals GET /events (caught up {waited:.2f}s after the last send)")
    finally:
        for r in receivers:
            await r.stop()
        if killed:
            spawn_rtchat(1, ENV["RTCHAT1_PORT"])
            took = await wait_ready(api, A)
            log(f"  restarted A (pid {read_pid(1)}): /readyz 200 after {took:.1f}s")


async def test_pg_restart(api):
    """PostgreSQL restarts while senders send through A and B and sockets listen on both."""
    p = await new_users(api, A, [f"p{i}" for i in range(6)])
    c1 = await create_chat(api, A, p[0], [p[1], p[2], p[3]], title="PG1")
    c2 = await create_chat(api, B, p[2], [p[3], p[4], p[5]], title="PG2")
    c3 = await create_chat(api, A, p[0], [p[5]])
    members = {c1: {p[0].id, p[1].id, p[2].id, p[3].id}, c2: {p[2].id, p[3].id, p[4].id, p[5].id},
               c3: {p[0].id, p[5].id}}
    receivers = [
        Receiver(p[0], A, since=0), Receiver(p[1], B), Receiver(p[2], A), Receiver(p[2], B),
        Receiver(p[3], B, since=0), Receiver(p[4], NGX), Receiver(p[5], A, since=0),
    ]
    await start_receivers(receivers)
    pids = {"A": read_pid(1), "B": read_pid(2)}
    senders_plan = [(p[0], [c1, c3]), (p[2], [c1, c2]), (p[3], [c2, c1]), (p[5], [c2, c3])]
    per_sender, pace = 100, 0.03
    total = per_sender * len(senders_plan)
    stats = SendStats()
    try:
        senders = [asyncio.create_task(run_sender(
            api, user, [(cs[i % 2], (A, B)[(i + n) % 2]) for i in range(per_sender)], stats, pace))
            for n, (user, cs) in enumerate(senders_plan)]
        outages = []
        for n, mode in enumerate(("fast", "immediate")):
            await wait_until(lambda: len(stats.sent) >= total * (n + 1) // 3 or
                             all(s.done() for s in senders), 60, "the sends to go on")
            outages.append(await restart_postgres(api, mode, stats, total))
        await asyncio.wait_for(asyncio.gather(*senders), 120)
        t_done = now()
        check(not stats.problems, stats.problems[:3])
        for mode, start, end in outages:
            log(f"  failed send attempts started during the -m {mode} outage (stop to both "
                f"ready): {stats.failures_between(start, end)}")
        if stats.failed_attempts.get(500):
            log(f"  NOTE: {stats.failed_attempts[500]} send(s) answered 500 while PostgreSQL "
                f"went down, where 503 is expected (the rtchat logs in target/scaleout-logs/ "
                f"name the error; e.g. 57P01 admin_shutdown mapped to an internal error)")
        replays = await resend_acknowledged(api, stats, {p_.id: p_ for p_ in p})
        log(f"  {replays}")
        waited, logs = await converge_and_verify(api, receivers, timeout=30)
        check_sends_in_logs(receivers, logs, members, stats)
        for name, pid in pids.items():
            check(os.path.exists(f"/proc/{pid}") and
                  open(f"/proc/{pid}/stat").read().split()[2] != "Z",
                  f"rtchat {name} (pid {pid}) died during the PostgreSQL restart")
        # The history: every acknowledged message there once; nothing else.
        acked = collections.defaultdict(set)
        for m in stats.sent:
            acked[m["chat_id"]].add(m["id"])
        for cid, owner in ((c1, p[0]), (c2, p[2]), (c3, p[0])):
            history = await chat_history(api, A, owner, cid)
            keys = collections.Counter((m["sender_id"], m["client_id"]) for m in history)
            check(all(n == 1 for n in keys.values()), f"chat {cid}: a client_id stored twice")
            check({m["id"] for m in history} == acked[cid],
                  f"chat {cid}: history has {len(history)} messages, {len(acked[cid])} were "
                  f"acknowledged; missing {sorted(acked[cid] - {m['id'] for m in history})[:5]}, "
                  f"extra {sorted({m['id'] for m in history} - acked[cid])[:5]}")
        log(f"  {len(senders_plan)} senders x {per_sender}, {pace * 1000:.0f} ms apart, "
            f"alternating A/B, done {t_done - T0:.1f}s into the run; {stats.summary()}")
        log(f"  every socket equals GET /events (caught up {waited:.2f}s after the last send); "
            f"histories hold each acknowledged message once; A and B never exited:")
        for r in receivers:
            log(f"    {r.describe()}")
        # The listeners are back: single events cross between the processes again.
        group = [r for r in receivers if r.user.id in members[c1]]
        text = await probe_latency(api, p[0], c1, group, stats)
        log(f"  after the restarts, single messages to the other process's sockets: {text}")
        await converge_and_verify(api, receivers, timeout=5)
    finally:
        for r in receivers:
            await r.stop()


async def restart_postgres(api, mode, stats, total):
    """Stops PostgreSQL (-m fast, or -m immediate: a crash, recovery on start), keeps it down
    1.5 s, starts it, and waits for /readyz 200 on A and B. Returns what happened."""
    sent_before = len(stats.sent)
    t_stop = now()
    await run_pg_ctl("-m", mode, "-w", "-t", "30", "stop")
    t_stopped = now()
    await asyncio.sleep(1.5)  # a real outage: sends fail meanwhile
    t_start = now()
    await run_pg_ctl("-l", PG_LOG, "-w", "-t", "60", "start")
    t_started = now()
    ready = await asyncio.gather(wait_ready(api, A), wait_ready(api, B))
    log(f"  PostgreSQL stop -m {mode} at {t_stop - T0:.1f}s after {sent_before}/{total} "
        f"acknowledged sends (stop took {t_stopped - t_stop:.2f}s), down "
        f"{t_start - t_stopped:.1f}s, start took {t_started - t_start:.2f}s; /readyz 200 "
        f"again {ready[0]:.2f}s (A) and {ready[1]:.2f}s (B) after the start")
    return mode, t_stop, t_started + max(ready)


async def test_sigterm(api):
    """SIGTERM on a third process C: its socket closes with 1001, it exits 0 within the grace."""
    proc = spawn_rtchat(3, C_PORT, RTCHAT_SHUTDOWN_GRACE_SECS=str(int(GRACE_SECS)))
    took = await wait_ready(api, C)
    user = await new_user(api, C, "t0")
    sockets = [Receiver(user, C, label=f"t0@C #{i}") for i in range(16)]
    await start_receivers(sockets)
    # An idle keep-alive HTTP connection must not hold the exit up.
    idle = httpx.AsyncClient(timeout=5.0)
    try:
        await idle.get(f"{C}/healthz")
        t_term = now()
        proc.send_signal(signal.SIGTERM)
        exited = asyncio.create_task(watch_exit(proc, t_term + GRACE_SECS + 2))
        await wait_until(lambda: all(r.drops for r in sockets), 5,
                         "every socket on C to close after SIGTERM")
        t_close = max(r.drops[0][0] for r in sockets)
        codes = collections.Counter(r.drops[0][2] for r in sockets)
        t_exit = await exited
        if t_exit is None:
            proc.kill()
            raise CheckFailed(f"C still running {now() - t_term:.1f}s after SIGTERM "
                              f"(grace {GRACE_SECS:.0f}s)")
        log(f"  C up in {took:.1f}s; {len(sockets)} sockets and an idle keep-alive HTTP "
            f"connection open; SIGTERM -> close codes {dict(codes)}, the last "
            f"{(t_close - t_term) * 1000:.0f} ms after it; process exited with "
            f"{proc.returncode} after {(t_exit - t_term) * 1000:.0f} ms (grace {GRACE_SECS:.0f}s)")
        check(set(codes) == {1001}, f"sockets closed with {dict(codes)}, want 1001")
        check(proc.returncode == 0, f"exit code {proc.returncode}, want 0")
        check(t_exit - t_term <= GRACE_SECS + 0.5, f"exit took {t_exit - t_term:.1f}s, more "
              f"than the {GRACE_SECS:.0f}s grace")
    finally:
        await idle.aclose()
        await asyncio.gather(*(r.stop() for r in sockets))


async def watch_exit(proc, deadline):
    """The time `proc` exited, or None if it still runs at `deadline`."""
    while proc.poll() is None:
        if now() > deadline:
            return None
        await asyncio.sleep(0.01)
    return now()


TESTS = [
    ("nginx: REST and WebSocket through nginx", test_nginx),
    ("cross: cross-process delivery with the seq guarantees", test_cross_process),
    ("sigkill: kill -9 a process mid-stream", test_sigkill),
    ("pg-restart: PostgreSQL restart under load", test_pg_restart),
    ("sigterm: graceful shutdown", test_sigterm),
]


async def main():
    api = Api()
    passed, failed = [], []
    try:
        for base in (A, B, NGX):
            took = await wait_ready(api, base)
            log(f"{NAMES[base]} ready ({took:.1f}s)")
        only = set(sys.argv[1:])
        for name, test in TESTS:
            if only and name.split(":")[0] not in only:
                continue
            log(f"TEST {name}")
            try:
                await asyncio.wait_for(test(api), TEST_TIMEOUT)
                passed.append(name)
                log(f"PASS {name}")
            except (CheckFailed, AssertionError) as e:
                failed.append(name)
                log(f"FAIL {name}: {e}")
            except asyncio.TimeoutError:
                failed.append(name)
                log(f"FAIL {name}: the test did not finish in {TEST_TIMEOUT}s")
    except CheckFailed as e:
        log(f"FAIL setup: {e}")
        failed.append("setup")
    finally:
        await api.close()
        stop_children()
    print(f"scaleout: {len(passed)} passed, {len(failed)} failed", flush=True)
    return 0 if not failed and passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
