-- Initial schema.
--
-- Times: rows that the API shows as objects (sites, users, tokens, exports) keep
-- RFC 3339 text; hits and the aggregate tables keep whole seconds since the epoch
-- (INTEGER), with `hour` the start of a UTC hour and `day` the start of a UTC day.
--
-- The aggregate tables count visits (first visits of a path in a session), which is
-- what every stats endpoint reports. Each kind of number is kept twice where reads
-- need it: per path (for include_paths filters and per-path views) and per site (so a
-- site-wide question reads a few rows per day instead of one per path).

CREATE TABLE sites (
    id              INTEGER PRIMARY KEY,
    parent          INTEGER REFERENCES sites(id),
    code            TEXT    NOT NULL,
    cname           TEXT,
    cname_setup_at  TEXT,
    link_domain     TEXT    NOT NULL DEFAULT '',
    settings        TEXT    NOT NULL,
    user_defaults   TEXT    NOT NULL,
    received_data   INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'a' CHECK (state IN ('a', 'r', 'd')),
    created_at      TEXT    NOT NULL,
    updated_at      TEXT,
    first_hit_at    TEXT    NOT NULL
);
CREATE UNIQUE INDEX sites_code ON sites(code COLLATE NOCASE);
CREATE UNIQUE INDEX sites_cname ON sites(cname COLLATE NOCASE);
CREATE INDEX sites_parent ON sites(parent);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    email           TEXT    NOT NULL,
    email_verified  INTEGER NOT NULL DEFAULT 1,
    password        TEXT,
    totp_enabled    INTEGER NOT NULL DEFAULT 0,
    access          TEXT    NOT NULL DEFAULT '{"all":"a"}',
    settings        TEXT    NOT NULL,
    login_at        TEXT,
    open_at         TEXT,
    reset_at        TEXT,
    last_report_at  TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT
);
CREATE UNIQUE INDEX users_site_email ON users(site_id, email COLLATE NOCASE);

-- Only a SHA-256 of each token is kept: tokens are 256 random bits, so a fast hash
-- is enough, and a stolen database gives no usable token.
CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    user_id         INTEGER NOT NULL REFERENCES users(id),
    name            TEXT    NOT NULL,
    token_hash      TEXT    NOT NULL UNIQUE,
    permissions     INTEGER NOT NULL,
    sites           TEXT    NOT NULL DEFAULT '[-1]',
    created_at      TEXT    NOT NULL,
    last_used_at    TEXT
);

-- A path is looked up ignoring ASCII case (as upstream on SQLite) and keeps the
-- title it was first seen with.
CREATE TABLE paths (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    path            TEXT    NOT NULL COLLATE NOCASE,
    title           TEXT    NOT NULL DEFAULT '',
    event           INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX paths_site_path ON paths(site_id, path);

CREATE TABLE refs (
    id              INTEGER PRIMARY KEY,
    ref             TEXT    NOT NULL,
    ref_scheme      TEXT    NOT NULL
);
CREATE UNIQUE INDEX refs_ref ON refs(ref, ref_scheme);
INSERT INTO refs (id, ref, ref_scheme) VALUES (1, '', 'o');

CREATE TABLE browsers (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL
);
CREATE UNIQUE INDEX browsers_name_version ON browsers(name, version);

CREATE TABLE systems (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL
);
CREATE UNIQUE INDEX systems_name_version ON systems(name, version);

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    name            TEXT    NOT NULL COLLATE NOCASE
);
CREATE UNIQUE INDEX campaigns_site_name ON campaigns(site_id, name);

-- One row per counted pageview; ids only grow (AUTOINCREMENT never reuses one, even
-- after old rows are deleted), because export cursors depend on it.
CREATE TABLE hits (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id         INTEGER NOT NULL,
    path_id         INTEGER NOT NULL,
    ref_id          INTEGER NOT NULL,
    browser_id      INTEGER,
    system_id       INTEGER,
    campaign_id     INTEGER,
    session         BLOB,
    first_visit     INTEGER NOT NULL,
    width           INTEGER,
    location        TEXT    NOT NULL DEFAULT '',
    language        TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL
);
CREATE INDEX hits_site_id ON hits(site_id, id);

-- Bot hits are only logged, never counted or exported.
CREATE TABLE bots (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    bot             INTEGER NOT NULL,
    user_agent      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);

-- Sessions without cookies: `key` is a hash of (site, session key) under a salt that
-- changes every day, so the user agent and IP are never stored and old hashes can't
-- be tied to anyone once their salt is gone.
CREATE TABLE session_salts (
    epoch           INTEGER PRIMARY KEY,
    salt            BLOB    NOT NULL
);
CREATE TABLE sessions (
    key             BLOB    PRIMARY KEY,
    site_id         INTEGER NOT NULL,
    session         BLOB    NOT NULL,
    last_seen       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_last_seen ON sessions(last_seen);
-- Paths a session has visited: the first visit of each is a "visit".
CREATE TABLE session_paths (
    session         BLOB    NOT NULL,
    path_id         INTEGER NOT NULL,
    PRIMARY KEY (session, path_id)
) WITHOUT ROWID;

-- Hourly visits and pageviews per path.
CREATE TABLE hit_counts (
    site_id         INTEGER NOT NULL,
    path_id         INTEGER NOT NULL,
    hour            INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    pageviews       INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, hour)
) WITHOUT ROWID;
CREATE INDEX hit_counts_hour ON hit_counts(site_id, hour);

-- Hourly visits per site: totals without a path filter.
CREATE TABLE site_counts (
    site_id         INTEGER NOT NULL,
    hour            INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    events          INTEGER NOT NULL,
    pageviews       INTEGER NOT NULL,
    PRIMARY KEY (site_id, hour)
) WITHOUT ROWID;

-- Daily visits per path: ranking paths over whole days.
CREATE TABLE path_days (
    site_id         INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    path_id         INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, path_id)
) WITHOUT ROWID;

-- Visitors: the sessions seen each day (the first 8 bytes of the session id), and
-- visits without a session, which count one visitor each.
CREATE TABLE visitor_days (
    site_id         INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    session         INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, session)
) WITHOUT ROWID;
CREATE TABLE anonymous_days (
    site_id         INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
) WITHOUT ROWID;

-- Referrers: hourly per path; hourly and daily per site.
CREATE TABLE ref_counts (
    site_id         INTEGER NOT NULL,
    path_id         INTEGER NOT NULL,
    hour            INTEGER NOT NULL,
    ref_id          INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, hour, ref_id)
) WITHOUT ROWID;
-- The paths one referrer sent visits to (stats/toprefs/{ref}).
CREATE INDEX ref_counts_ref ON ref_counts(site_id, ref_id, hour);
CREATE TABLE ref_hours (
    site_id         INTEGER NOT NULL,
    hour            INTEGER NOT NULL,
    ref_id          INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    PRIMARY KEY (site_id, hour, ref_id)
) WITHOUT ROWID;
CREATE TABLE ref_days (
    site_id         INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    ref_id          INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, ref_id)
) WITHOUT ROWID;

-- Daily dimensions, per path (`*_stats`) and per site (`*_days`).
CREATE TABLE browser_stats (
    site_id INTEGER NOT NULL, path_id INTEGER NOT NULL, day INTEGER NOT NULL,
    browser_id INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, day, browser_id)
) WITHOUT ROWID;
CREATE TABLE browser_days (
    site_id INTEGER NOT NULL, day INTEGER NOT NULL,
    browser_id INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, browser_id)
) WITHOUT ROWID;

CREATE TABLE system_stats (
    site_id INTEGER NOT NULL, path_id INTEGER NOT NULL, day INTEGER NOT NULL,
    system_id INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, day, system_id)
) WITHOUT ROWID;
CREATE TABLE system_days (
    site_id INTEGER NOT NULL, day INTEGER NOT NULL,
    system_id INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, system_id)
) WITHOUT ROWID;

CREATE TABLE location_stats (
    site_id INTEGER NOT NULL, path_id INTEGER NOT NULL, day INTEGER NOT NULL,
    location TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, day, location)
) WITHOUT ROWID;
CREATE TABLE location_days (
    site_id INTEGER NOT NULL, day INTEGER NOT NULL,
    location TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, location)
) WITHOUT ROWID;

CREATE TABLE size_stats (
    site_id INTEGER NOT NULL, path_id INTEGER NOT NULL, day INTEGER NOT NULL,
    width INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, day, width)
) WITHOUT ROWID;
CREATE TABLE size_days (
    site_id INTEGER NOT NULL, day INTEGER NOT NULL,
    width INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, width)
) WITHOUT ROWID;

CREATE TABLE language_stats (
    site_id INTEGER NOT NULL, path_id INTEGER NOT NULL, day INTEGER NOT NULL,
    language TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, day, language)
) WITHOUT ROWID;
CREATE TABLE language_days (
    site_id INTEGER NOT NULL, day INTEGER NOT NULL,
    language TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, language)
) WITHOUT ROWID;

-- Campaigns keep the source (utm_source etc.) that came with them.
CREATE TABLE campaign_stats (
    site_id INTEGER NOT NULL, path_id INTEGER NOT NULL, day INTEGER NOT NULL,
    campaign_id INTEGER NOT NULL, ref TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, path_id, day, campaign_id, ref)
) WITHOUT ROWID;
CREATE TABLE campaign_days (
    site_id INTEGER NOT NULL, day INTEGER NOT NULL,
    campaign_id INTEGER NOT NULL, ref TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, campaign_id, ref)
) WITHOUT ROWID;

CREATE TABLE exports (
    id                  INTEGER PRIMARY KEY,
    site_id             INTEGER NOT NULL REFERENCES sites(id),
    format              TEXT    NOT NULL DEFAULT 'csv',
    start_from_hit_id   INTEGER NOT NULL DEFAULT 0,
    last_hit_id         INTEGER,
    path                TEXT    NOT NULL,
    created_at          TEXT    NOT NULL,
    finished_at         TEXT,
    num_rows            INTEGER,
    size                TEXT,
    hash                TEXT,
    error               TEXT
);
CREATE INDEX exports_site ON exports(site_id, id);

-- Replies to POST /api/v0/count requests that carried an Idempotency-Key, kept for
-- 24 hours so that a retried batch is answered again instead of counted again.
CREATE TABLE idempotency_keys (
    site_id         INTEGER NOT NULL,
    key             TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    status          INTEGER NOT NULL,
    headers         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    PRIMARY KEY (site_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
