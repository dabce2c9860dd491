-- Settings every process on this database must share (a fingerprint of the token
-- secret, …), each held by the processes that run with it: a value whose holders have
-- all been gone for a while may be replaced, a live one must be matched.
CREATE TABLE deployment_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
