-- An event may carry a claim (`metadata.claim`) that no other event of the log carries:
-- from this version on a sender's idempotency key (`client_msg_id`) is claimed by its
-- message's own event, where it used to take a second event on a claim stream of its
-- own. The index makes a claim unique and finds it.
CREATE UNIQUE INDEX events_claim ON events (json_extract(metadata, '$.claim'))
    WHERE json_extract(metadata, '$.claim') IS NOT NULL;

-- Keys claimed by older versions, on `clientkey-<key>-<from>` and before that on
-- `clientmsg-<from>-<key>` streams, are claimed by their messages' events too, under the
-- name used now, so a retry of one is answered with its message.
UPDATE events SET metadata = json_set(metadata, '$.claim', c.claim)
FROM (
    SELECT 'message-' || json_extract(payload, '$.message_id') AS stream,
           'clientkey-' || json_extract(payload, '$.client_msg_id') || '-' || json_extract(payload, '$.from') AS claim
    FROM events WHERE event_type = 'ClientMessageKeyClaimed'
) AS c
WHERE events.stream_id = c.stream AND events.stream_version = 1;
