-- GET /search/messages (src/store/search.rs). $1 the caller, $2 one of their chats or NULL
-- for all, $3 the tsquery (built from plain words, see search.rs), $4 the `before` cursor,
-- $5 the page size plus one. bench/search-explain.sh explains this statement.
--
-- The caller's chats are an array computed once (an InitPlan), not an `IN (subquery)`: as a
-- join the planner may run the GIN scan once per chat (50 scans of a common word's posting
-- list, 3 s in the benchmark); as an array it runs once, ANDed with the chats' bitmap of
-- messages_chat_id_sender_idx for an uncommon word, or is skipped for a common one, walking
-- messages_pkey newest first and checking each row.
-- search-sql-begin
SELECT {columns}
FROM messages m
WHERE m.chat_id = ANY (ARRAY(SELECT cm.chat_id FROM chat_members cm
                             WHERE cm.user_id = $1 AND ($2::bigint IS NULL OR cm.chat_id = $2)))
  AND to_tsvector('simple', m.text) @@ to_tsquery('simple', $3)
  AND m.id < $4
ORDER BY m.id DESC
LIMIT $5
-- search-sql-end
