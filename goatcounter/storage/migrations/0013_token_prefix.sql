-- A token is found by its first characters, which are not secret, and then checked by
-- comparing the hash of the whole token in constant time. Tokens issued before this
-- have only their hash: they are found by it once and get their prefix on that use.
ALTER TABLE api_tokens ADD COLUMN token_prefix TEXT;
CREATE INDEX api_tokens_prefix ON api_tokens (site_id, token_prefix);
