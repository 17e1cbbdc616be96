-- Sign-in with OpenID Connect: the external identities linked to accounts, and the sign-ins
-- in flight between the redirect to the provider and its answer. Then notifications to the
-- phone: the channels of each account and their queue.

-- One row per identity a provider vouches for, named by the issuer and the provider's
-- subject (`sub`, stable per issuer); `email` is the verified address the provider gave when
-- the identity was linked (shown in the settings, exported). The purge of a deleted account
-- deletes its rows (SPEC §9: the external identity is cleared).
CREATE TABLE identities (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    provider     TEXT NOT NULL,
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    email        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX identities_subject ON identities(issuer, subject);
CREATE INDEX identities_user ON identities(user_id);

-- A sign-in (or a link from the settings) in flight, bound to the browser's session: the
-- answer is accepted only from the session that started it, once (the row is taken by its
-- `state`). The state is stored as a keyed hash; the PKCE verifier and the nonce are not
-- stored but derived from `salt` and the install key. Once the provider's answer is verified,
-- `issuer`, `subject` and `email` hold what it vouched for while the person confirms the
-- sign-up or proves the password of the account with that address (`stage` = 'verified').
CREATE TABLE oidc_flows (
    id          INTEGER PRIMARY KEY,
    state_hash  BLOB NOT NULL UNIQUE,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    provider    TEXT NOT NULL,
    salt        TEXT NOT NULL,
    purpose     TEXT NOT NULL CHECK (purpose IN ('login', 'link')),
    user_id     INTEGER REFERENCES users(id),
    next        TEXT NOT NULL DEFAULT '/dashboard',
    stage       TEXT NOT NULL DEFAULT 'started' CHECK (stage IN ('started', 'verified')),
    issuer      TEXT,
    subject     TEXT,
    email       TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX oidc_flows_session ON oidc_flows(session_id);
CREATE INDEX oidc_flows_expires ON oidc_flows(expires_at);
CREATE INDEX oidc_flows_user ON oidc_flows(user_id);

-- Notifications to the phone: the channels an account set up (ntfy, Telegram, e-mail) with
-- the events each wants, and the queue the `notifications` job sends (written in the
-- transaction of the event, like webhook deliveries). An ntfy access token is sealed with
-- the install key; a Telegram channel waits for its chat with a `/start CODE` (the code's
-- keyed hash in `link_code_hash`) unless the chat id was typed in.
CREATE TABLE notify_channels (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    kind           TEXT NOT NULL CHECK (kind IN ('ntfy', 'telegram', 'email')),
    url            TEXT NOT NULL DEFAULT '',
    token_sealed   TEXT NOT NULL DEFAULT '',
    chat_id        TEXT NOT NULL DEFAULT '',
    link_code_hash BLOB,
    events         TEXT NOT NULL,
    -- `low_balance`: told when a charge takes the balance below this (minor units).
    low_balance_minor INTEGER,
    created_at     INTEGER NOT NULL
);
CREATE INDEX notify_channels_user ON notify_channels(user_id);
CREATE UNIQUE INDEX notify_channels_link ON notify_channels(link_code_hash)
    WHERE link_code_hash IS NOT NULL;

-- One message to one channel. `body` is NULL once the message is sent or given up (it may
-- hold a code). Finished rows are the delivery log, kept for `log_retention`.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    channel_id  INTEGER REFERENCES notify_channels(id) ON DELETE SET NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    event       TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notifications_due ON notifications(next_at) WHERE state = 'pending';
CREATE INDEX notifications_pending ON notifications(created_at) WHERE state = 'pending';
CREATE INDEX notifications_user ON notifications(user_id, id);
CREATE INDEX notifications_channel ON notifications(channel_id);
CREATE INDEX notifications_created ON notifications(created_at);

-- How far the `telegram` job has read the bot's updates (getUpdates `offset`).
CREATE TABLE telegram_offset (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_update INTEGER NOT NULL
);
