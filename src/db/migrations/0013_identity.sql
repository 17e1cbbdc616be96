-- Sign-in with OpenID Connect: the external identities linked to accounts, and the sign-ins
-- in flight between the redirect to the provider and its answer.

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
