-- Follows sqlite/log/0009. Idempotency claims are appended to `clientkey-<key>-<from>`
-- streams from this version on (they were `clientmsg-<from>-<key>`). Where the last claim
-- under the old name is (0: there is none) is kept as a counter, so a retry of a message
-- claimed before the upgrade is still answered with that message, and a log without old
-- claims never looks for them.
INSERT INTO id_counters (name, value)
SELECT 'legacy_client_keys', COALESCE(MAX(position), 0) FROM events WHERE event_type = 'ClientMessageKeyClaimed';
