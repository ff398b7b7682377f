-- Two-factor sign-in with time-based codes (TOTP, RFC 6238), as upstream. The secret is
-- made when a user opens the page that turns it on, and only counts once totp_enabled
-- is set by a code made from it. totp_step is the time step of the last code accepted,
-- so that a code seen over someone's shoulder can't be used a second time.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0;
