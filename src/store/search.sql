-- GET /search/messages (src/store/search.rs). $1 the chats searched (the caller's, read just
-- before in the same transaction), $2 the tsquery (built from plain words, see search.rs),
-- $3 the `before` cursor, $4 the page size plus one. bench/search-explain.sh explains it.
--
-- The chats come as an array value, not a subquery, so that the (custom) plan is made
-- knowing them: the planner weighs how many messages they hold (from chat_id's statistics)
-- against how many the words match. A subquery hides that: as a join it ran the GIN scan once
-- per chat (3 s for a common word over 50 chats), and as an InitPlan array it walked all of
-- messages_pkey for a user whose one chat held old messages (0.5 s per million messages).
-- search-sql-begin
SELECT {columns}
FROM messages m
WHERE m.chat_id = ANY ($1::bigint[])
  AND to_tsvector('simple', translate(m.text, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                ')) @@ to_tsquery('simple', $2)
  AND m.id < $3
ORDER BY m.id DESC
LIMIT $4
-- search-sql-end
