-- bench/compare/prefill.sql - :rows live codes, nonces and refresh tokens
-- (one family each), keys shaped like the store's: 43 characters.
-- psql -v rows=N -f prefill.sql
TRUNCATE attesto_authorization_codes, attesto_refresh_tokens, dpop_nonces, dpop_replays;
INSERT INTO attesto_authorization_codes (code_hash, client_id, subject, redirect_uri, scope,
        code_challenge, code_challenge_method, dpop_jkt, nonce, family_id, expires_at)
SELECT 'c' || lpad(i::text, 42, '0'), 'client-' || (i % 100), 'user-' || i,
       'https://client.example/cb', '{openid,profile}',
       'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', 'S256',
       '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I', 'n-0S6_WzA2Mj', 'f' || i,
       now() + interval '10 minutes'
FROM generate_series(1, :rows) AS i;
INSERT INTO dpop_nonces (nonce, expires_at)
SELECT 'n' || lpad(i::text, 42, '0'), now() + interval '10 minutes'
FROM generate_series(1, :rows) AS i;
INSERT INTO attesto_refresh_tokens (token_hash, family_id, subject, client_id, scope, expires_at)
SELECT 'r' || lpad(i::text, 42, '0'), 'f' || lpad(i::text, 42, '0'), 'user-' || i,
       'client-' || (i % 100), '{openid,offline_access}', now() + interval '1 day'
FROM generate_series(1, :rows) AS i;
VACUUM ANALYZE;
CHECKPOINT;
