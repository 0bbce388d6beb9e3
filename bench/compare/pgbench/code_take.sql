-- code take: the statement oncestore's PostgreSQL engine runs for
-- once_code_take (pg/code.c code_take_sql; AttestoPhoenix take/1,
-- ATTESTO-PG 2.1): one UPDATE, the winner gets the row back.  $1 the key,
-- $2 now (run.sh: -D now, whole UTC seconds), both sent as text.  A
-- consumed row gets 0 rows; the engine then reads it once more (the
-- loser's SELECT), which pgbench cannot branch on: see hit%.
\set k 1000000000000000000 + random(1, :rows)
UPDATE "attesto_authorization_codes" SET consumed_at = :now::timestamp WHERE code_hash = :k AND consumed_at IS NULL RETURNING client_id, subject, scope, resource, redirect_uri, code_challenge, code_challenge_method, cnf->>'jkt', COALESCE(nonce, CASE WHEN jsonb_typeof(claims->'nonce') = 'string' THEN claims->>'nonce' END), CASE WHEN jsonb_typeof(claims->'nonce') = 'string' THEN claims - 'nonce' ELSE claims END, family_id, expires_at, inserted_at, consumed_at, consumed_success;
