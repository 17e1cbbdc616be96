-- SIM banks and multi-SIM gateways (GoIP, Dinstar, Skyline/Ejoin) as device kinds; a device
-- is "never seen" until its first authenticated contact; what gateways report about each SIM;
-- long SMS that arrive in parts, held until the last part.
--
-- `devices.kind` has a CHECK, so the table is rebuilt (migrations run with foreign keys off
-- and check them before committing, see db::migrate).
CREATE TABLE devices_new (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    owner_id        INTEGER NOT NULL REFERENCES users(id),
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('capcom6', 'httpsms', 'textbee', 'generic',
                                                  'goip', 'dinstar', 'ejoin')),
    secret_salt     TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,              -- registration or last authenticated request
    last_message_at INTEGER,
    online          INTEGER NOT NULL DEFAULT 1,    -- cleared by the `devices` job when silent
    revoked_at      INTEGER,
    first_seen_at   INTEGER                        -- NULL: it never called
);
INSERT INTO devices_new (id, public_id, owner_id, name, kind, secret_salt, created_at,
                         last_seen_at, last_message_at, online, revoked_at, first_seen_at)
SELECT id, public_id, owner_id, name, kind, secret_salt, created_at, last_seen_at,
       last_message_at, online, revoked_at,
       CASE WHEN last_message_at IS NOT NULL OR last_seen_at > created_at THEN created_at END
FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_owner ON devices(owner_id);
CREATE INDEX devices_seen ON devices(online, last_seen_at);

-- What a gateway last reported about the SIM in a slot (GoIP keep-alives, Ejoin status).
CREATE TABLE sim_status (
    number_id   INTEGER PRIMARY KEY REFERENCES numbers(id),
    signal      INTEGER,                           -- 0..31 (GSM CSQ) as the gateway reports
    network     TEXT NOT NULL DEFAULT '',          -- the operator the SIM is registered on
    state       TEXT NOT NULL DEFAULT '',          -- e.g. LOGIN, or the gateway's port state
    imsi        TEXT NOT NULL DEFAULT '',
    iccid       TEXT NOT NULL DEFAULT '',
    reported_at INTEGER NOT NULL
);

-- Parts of a long SMS received separately without part numbers (GoIP, and any gateway that
-- forwards parts): held per device, receiving number and sender until a part shorter than a
-- full segment arrives or the window passes, then taken in as one message.
CREATE TABLE sms_parts (
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    recipient   TEXT NOT NULL,                     -- the receiving number ('' if unknown)
    sender      TEXT NOT NULL,
    text        TEXT NOT NULL,
    parts       INTEGER NOT NULL,
    ids         TEXT NOT NULL,                     -- the parts' de-duplication ids, one per line
    received_at INTEGER NOT NULL,                  -- the first part's
    last_at     INTEGER NOT NULL,                  -- our clock at the last part
    PRIMARY KEY (device_id, recipient, sender)
) WITHOUT ROWID;
CREATE INDEX sms_parts_age ON sms_parts(last_at);
