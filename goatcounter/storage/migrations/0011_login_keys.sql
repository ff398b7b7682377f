-- Signing in to the pages. A session cookie carries a MAC over the user's login_key,
-- so replacing the key (on sign-out or a new password) ends every session of that user
-- at once, on every device. NULL: no session is valid until the next sign-in.
ALTER TABLE users ADD COLUMN login_key TEXT;
