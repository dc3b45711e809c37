-- rtchat's one schema. Applied at every start-up inside one transaction, under an advisory
-- lock so several processes starting together do not race; every statement is idempotent.
-- `schema_version` records what has been applied; a later version adds its own
-- `ALTER ... IF NOT EXISTS` steps below and bumps the number, so existing data is kept.

CREATE TABLE IF NOT EXISTS schema_version (
    version     integer     NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schema_version_pkey PRIMARY KEY (version)
);

CREATE TABLE IF NOT EXISTS users (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The user's event counter: the seq of the last event appended for them. Bumped under
    -- this row's lock in the transaction that appends the event (see src/events.rs).
    last_seq      bigint      NOT NULL DEFAULT 0,
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
-- Emails are unique case-insensitively (register's 409) and found by prefix (GET /users?q=).
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email) text_pattern_ops);
-- GET /users?q= matches a name prefix too.
CREATE INDEX IF NOT EXISTS users_name_prefix_idx ON users (lower(name) text_pattern_ops);

CREATE TABLE IF NOT EXISTS chats (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    type             text        NOT NULL,
    title            text,
    creator_id       bigint      NOT NULL,
    is_active        boolean     NOT NULL DEFAULT true,
    -- 'low:high' user ids of a private chat; unique, so a pair has one private chat even
    -- when both users create it at the same moment.
    private_key      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Bumped by each new message: GET /chats sorts by it.
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chats_pkey PRIMARY KEY (id),
    CONSTRAINT chats_type_check CHECK (type IN ('private', 'group')),
    CONSTRAINT chats_creator_fkey FOREIGN KEY (creator_id) REFERENCES users (id),
    CONSTRAINT chats_private_key_key UNIQUE (private_key)
);

CREATE TABLE IF NOT EXISTS chat_members (
    chat_id              bigint      NOT NULL,
    user_id              bigint      NOT NULL,
    joined_at            timestamptz NOT NULL DEFAULT now(),
    -- The read cursor; only moves forward.
    last_read_message_id bigint,
    CONSTRAINT chat_members_pkey PRIMARY KEY (chat_id, user_id),
    CONSTRAINT chat_members_chat_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT chat_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
-- GET /chats: the chats of one user.
CREATE INDEX IF NOT EXISTS chat_members_user_idx ON chat_members (user_id, chat_id);

CREATE TABLE IF NOT EXISTS messages (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    chat_id    bigint      NOT NULL,
    sender_id  bigint      NOT NULL,
    text       text        NOT NULL,
    client_id  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT messages_chat_fkey FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
    CONSTRAINT messages_sender_fkey FOREIGN KEY (sender_id) REFERENCES users (id),
    -- Idempotent send: one message per (chat, sender, client_id). NULL client_ids never clash.
    CONSTRAINT messages_client_id_key UNIQUE (chat_id, sender_id, client_id)
);
-- Message history pages (before/after cursors), last_message and unread counts.
CREATE INDEX IF NOT EXISTS messages_chat_id_idx ON messages (chat_id, id);

-- The durable event log. An event's body is stored once in `events`; `user_events` gives
-- each recipient its own consecutive seq pointing at it. See src/events.rs.
CREATE TABLE IF NOT EXISTS events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    type       text        NOT NULL,
    -- The payload JSON exactly as sent on the socket, serialised once.
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (id)
);
-- Retention prunes by age.
CREATE INDEX IF NOT EXISTS events_created_at_idx ON events (created_at);

CREATE TABLE IF NOT EXISTS user_events (
    user_id    bigint      NOT NULL,
    seq        bigint      NOT NULL,
    event_id   bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Replay reads `WHERE user_id = $1 AND seq > $2 ORDER BY seq`: this key serves it.
    CONSTRAINT user_events_pkey PRIMARY KEY (user_id, seq)
);
-- Retention prunes by age.
CREATE INDEX IF NOT EXISTS user_events_created_at_idx ON user_events (created_at);


-- Login sessions. An access token names its session (`sid`); a refresh token is a random
-- secret stored only as its SHA-256. Each refresh rotates the token: the old one is marked
-- used, and presenting a used one again revokes the whole session (theft detection).
CREATE TABLE IF NOT EXISTS sessions (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
-- Logout of all sessions of a user.
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (user_id);
-- Each process loads recently revoked sessions at start and at every sweep.
CREATE INDEX IF NOT EXISTS sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash bytea       NOT NULL,
    session_id bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (token_hash),
    CONSTRAINT refresh_tokens_session_fkey FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
);

-- Login attempts per key (`email:...`, `addr:...`) in fixed 5-minute windows, shared by all
-- processes so that a brute force through N processes is limited as one (src/limits.rs).
CREATE TABLE IF NOT EXISTS login_attempts (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    attempts     integer     NOT NULL,
    CONSTRAINT login_attempts_pkey PRIMARY KEY (key)
);

-- Appends events to the log: inserts each event body once, then for each recipient, in
-- ascending user id order, bumps `users.last_seq` (a row lock held until commit) and writes
-- its `user_events` rows. Ascending order is rtchat's one lock order for user rows, so
-- concurrent writers never deadlock; the lock makes seqs commit in order (src/events.rs).
-- Deliveries are parallel arrays: recipient p_users[k] gets event number p_event_index[k]
-- (1-based, in p_types order); a user's seqs follow that order.
CREATE OR REPLACE FUNCTION rtchat_append_events(
    p_types text[], p_payloads text[], p_users bigint[], p_event_index int[]
) RETURNS TABLE (user_id bigint, seq bigint, event_index int)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_event_ids bigint[];
    v_user bigint;
    v_count bigint;
    v_last bigint;
    v_users bigint[] := '{}';
    v_firsts bigint[] := '{}';
BEGIN
    WITH inserted AS (
        INSERT INTO events (type, payload)
        SELECT t, p FROM unnest(p_types, p_payloads) WITH ORDINALITY AS x(t, p, ord) ORDER BY ord
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO v_event_ids FROM inserted;

    FOR v_user, v_count IN
        SELECT d.u, count(*) FROM unnest(p_users) AS d(u) GROUP BY d.u ORDER BY d.u
    LOOP
        UPDATE users SET last_seq = last_seq + v_count WHERE id = v_user RETURNING last_seq INTO v_last;
        IF FOUND THEN
            v_users := v_users || v_user;
            v_firsts := v_firsts || (v_last - v_count);
        END IF;
    END LOOP;

    -- created_at is taken now, under the counter locks, so for each user it grows with seq
    -- and retention, pruning by age, only ever removes a prefix of a user's log.
    RETURN QUERY
    INSERT INTO user_events (user_id, seq, event_id, created_at)
    SELECT d.u,
           b.first + row_number() OVER (PARTITION BY d.u ORDER BY d.ord),
           v_event_ids[d.e],
           clock_timestamp()
    FROM unnest(p_users, p_event_index) WITH ORDINALITY AS d(u, e, ord)
    JOIN unnest(v_users, v_firsts) AS b(u, first) ON b.u = d.u
    RETURNING user_events.user_id, user_events.seq,
              array_position(v_event_ids, user_events.event_id);
END
$fn$;

-- Sends a message in one statement (its own transaction, one round trip): the hot path.
-- Locks the chat row first (serialising the sends of one chat, so message ids commit in
-- order), reads the members after the lock, answers a repeated client_id with the original
-- (status 'repeat'), inserts, and appends `new_message` for every member. The payload is the
-- Message JSON of the REST API (src/model.rs), built here so that no second round trip is
-- needed; the delivery property test compares the two.
-- status: 'created' | 'repeat' | 'not_found' | 'inactive'.
CREATE OR REPLACE FUNCTION rtchat_send_message(
    p_chat bigint, p_sender bigint, p_text text, p_client_id text
) RETURNS TABLE (status text, message_id bigint, created_at timestamptz, payload text,
                 users bigint[], seqs bigint[])
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_active boolean;
    v_members bigint[];
    v_id bigint;
    v_created timestamptz;
    v_payload text;
BEGIN
    UPDATE chats SET last_activity_at = now() WHERE id = p_chat RETURNING is_active INTO v_active;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::timestamptz, NULL::text, NULL::bigint[], NULL::bigint[];
        RETURN;
    END IF;
    -- A new statement, so a new snapshot taken after the lock: it sees every membership
    -- change, as those take the same lock.
    v_members := ARRAY(SELECT m.user_id FROM chat_members m WHERE m.chat_id = p_chat ORDER BY m.user_id);
    IF NOT (p_sender = ANY (v_members)) THEN
        RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::timestamptz, NULL::text, NULL::bigint[], NULL::bigint[];
        RETURN;
    END IF;
    IF p_client_id IS NOT NULL THEN
        -- Any earlier send with this client_id committed before we got the chat lock.
        SELECT m.id INTO v_id FROM messages m
        WHERE m.chat_id = p_chat AND m.sender_id = p_sender AND m.client_id = p_client_id;
        IF FOUND THEN
            RETURN QUERY SELECT 'repeat', v_id, NULL::timestamptz, NULL::text, NULL::bigint[], NULL::bigint[];
            RETURN;
        END IF;
    END IF;
    IF NOT v_active THEN
        RETURN QUERY SELECT 'inactive', NULL::bigint, NULL::timestamptz, NULL::text, NULL::bigint[], NULL::bigint[];
        RETURN;
    END IF;
    INSERT INTO messages (chat_id, sender_id, text, client_id)
    VALUES (p_chat, p_sender, p_text, p_client_id)
    RETURNING id, created_at INTO v_id, v_created;
    v_payload := json_build_object(
        'id', v_id, 'chat_id', p_chat, 'sender_id', p_sender, 'text', p_text,
        'created_at', to_char(v_created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'edited_at', NULL, 'client_id', p_client_id)::text;
    RETURN QUERY
    SELECT 'created', v_id, v_created, v_payload,
           array_agg(a.user_id ORDER BY a.user_id), array_agg(a.seq ORDER BY a.user_id)
    FROM rtchat_append_events(ARRAY['new_message'], ARRAY[v_payload], v_members,
                              array_fill(1, ARRAY[cardinality(v_members)])) a;
END
$fn$;

INSERT INTO schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;
