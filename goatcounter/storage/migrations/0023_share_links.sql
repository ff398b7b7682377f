-- Named read-only links to a site's dashboard: each has its own secret (only a hash is
-- kept, found by a prefix as API tokens are), may expire, and may be revoked.
CREATE TABLE share_links (
    id              INTEGER PRIMARY KEY,
    site_id         INTEGER NOT NULL REFERENCES sites(id),
    name            TEXT    NOT NULL,
    secret_prefix   TEXT    NOT NULL,
    secret_hash     TEXT    NOT NULL,
    created_by      INTEGER REFERENCES users(id),
    created_at      TEXT    NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    last_used_at    TEXT
);
CREATE INDEX share_links_prefix ON share_links(secret_prefix);
CREATE INDEX share_links_site ON share_links(site_id, id);
