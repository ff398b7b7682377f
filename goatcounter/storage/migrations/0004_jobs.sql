-- When each periodic job last ran, so that one worker runs it for the whole server.
CREATE TABLE jobs (
    name            TEXT    PRIMARY KEY,
    last_run        INTEGER NOT NULL
);
-- Old bot hits go after BOT_RETENTION_DAYS.
CREATE INDEX bots_created ON bots(created_at);
