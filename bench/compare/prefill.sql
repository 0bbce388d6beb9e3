-- bench/compare/prefill.sql - :rows live codes, nonces and refresh tokens
-- (one family each) for the pgbench rows, shaped as oncebench --postgres
-- writes them through the engine (same column values and sizes), except
-- the keys: pgbench can only make numbers, so a key is the decimal text of
-- 1000000000000000000 + i (19 characters, where the engine's hashes have
-- 43).  Times are UTC wall clock in whole seconds (ATTESTO-PG 6.4).
-- psql -v rows=N -f prefill.sql
TRUNCATE attesto_authorization_codes, attesto_refresh_tokens, attesto_refresh_family_revocations,
         dpop_nonces, dpop_replays;
INSERT INTO attesto_authorization_codes (code_hash, client_id, subject, scope, resource, redirect_uri,
        code_challenge, code_challenge_method, cnf, nonce, claims, family_id, access_token_jti,
        access_token_expires_at, access_token_revoked_at, expires_at, consumed_at, consumed_success,
        inserted_at)
SELECT (1000000000000000000 + i)::text, 'bench-client', 'user-0001', '{}', '{}',
       'https://app.example/callback', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', 'S256', NULL,
       NULL, '{}', NULL, NULL, NULL, NULL, t + interval '1 day', NULL, false, t
FROM generate_series(1, :rows) AS i, date_trunc('second', now() AT TIME ZONE 'UTC') AS t;
-- Valid for a day: every run's accept window ($3, fresh_from) reaches back
-- to the prefill.
INSERT INTO dpop_nonces (id, nonce, issued_at, expires_at, used_at)
SELECT gen_random_uuid(), (1000000000000000000 + i)::text, t, t + interval '1 day', NULL
FROM generate_series(1, :rows) AS i, date_trunc('second', now() AT TIME ZONE 'UTC') AS t;
-- Generation 1, bound to oncebench's issuer (PG_BENCH_ISSUER), 22-character
-- family ids.
INSERT INTO attesto_refresh_tokens (id, token_hash, family_id, generation, client_id, subject, scope,
        resource, acr, auth_time, family_expires_at, attestation_jkt, cnf, claims, consumed,
        consumed_at, successor, family_revoked, expires_at, parent_hash, inserted_at)
SELECT gen_random_uuid(), (1000000000000000000 + i)::text, 'f' || lpad(i::text, 21, '0'), 1,
       'bench-client', 'user-0001', '{openid,profile,offline_access}', '{}', NULL, NULL, NULL, NULL,
       NULL, '{"urn:attesto:refresh-token:issuer": "https://issuer.oncebench.example"}', false, NULL,
       NULL, false, t + interval '1 day', NULL, t
FROM generate_series(1, :rows) AS i, date_trunc('second', now() AT TIME ZONE 'UTC') AS t;
VACUUM ANALYZE;
CHECKPOINT;
