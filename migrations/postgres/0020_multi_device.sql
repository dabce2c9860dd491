-- Multi-device (IM_MULTI_DEVICE): a user's desktop/web session beside the phone's, and
-- that device's own delivery cursor (NULL until it has one: it starts where the phone is).
ALTER TABLE users ADD COLUMN desktop_session_id TEXT;
ALTER TABLE inbox_cursor ADD COLUMN desktop_upto BIGINT;
