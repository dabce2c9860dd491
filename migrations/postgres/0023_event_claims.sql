-- Follows sqlite/log/0010. An event may carry a claim (`metadata.claim`) that no other
-- event of the log carries: from this version on a sender's idempotency key
-- (`client_msg_id`) is claimed by its message's own event, where it used to take a second
-- event on a claim stream of its own. The index makes a claim unique and finds it.
CREATE UNIQUE INDEX events_claim ON events ((metadata->>'claim')) WHERE (metadata->>'claim') IS NOT NULL;

-- Keys claimed by older versions, on `clientkey-<key>-<from>` and before that on
-- `clientmsg-<from>-<key>` streams, are claimed by their messages' events too, under the
-- name used now, so a retry of one is answered with its message.
UPDATE events AS e SET metadata = (e.metadata::jsonb || jsonb_build_object('claim', c.claim))::json
FROM (
    SELECT 'message-' || (payload->>'message_id') AS stream,
           'clientkey-' || (payload->>'client_msg_id') || '-' || (payload->>'from') AS claim
    FROM events WHERE event_type = 'ClientMessageKeyClaimed'
) AS c
WHERE e.stream_id = c.stream AND e.stream_version = 1;
