-- refresh rotate: the transaction oncestore's PostgreSQL engine runs for
-- once_refresh_rotate (pg/refresh.c rotate; AttestoPhoenix rotate/4,
-- ATTESTO-PG 2.2.3), statement for statement, in its order: the parent's
-- family, the family's advisory lock (the int4 pair AttestoPhoenix takes),
-- the parent locked (FOR UPDATE, issuer-bound), the tombstone and the
-- legacy flag, then - unless the parent was consumed already (a reuse:
-- COMMIT) - the child generation and the child hash checked, the parent
-- marked rotated with its sealed successor, the child inserted.
-- Parameters as the engine sends them, as text, except:
--   - keys are 19-digit numbers (pgbench makes no strings): the parent
--     1000000000000000000 + i (prefill.sql), its child 2000000000000000000 + i;
--   - the child's id is gen_random_uuid() where the engine sends a uuid it
--     drew, and the parameters the engine sends as NULL are literal NULLs
--     (pgbench cannot send a NULL parameter);
--   - :issuer is sent twice where the engine sends $2 once;
--   - the issuer claim's name is spelled E'urn\x3a...' (the same constant):
--     pgbench would take each ':name' inside a quoted literal for a variable;
--   - the successor is a constant (run.sh: -D successor) of the length of
--     the engine's sealed v2 envelope, where the engine seals each one.
\set id random(1, :rows)
\set parent 1000000000000000000 + :id
\set child 2000000000000000000 + :id
BEGIN;
SELECT r.family_id FROM "attesto_refresh_tokens" r WHERE r.token_hash = :parent \gset
SELECT pg_advisory_xact_lock(1096045126::int4, hashtext(:family_id));
SELECT r.id, r.token_hash, r.family_id, r.generation, r.client_id, r.subject, r.scope, r.resource, r.acr, r.auth_time, r.family_expires_at, r.attestation_jkt, r.cnf, r.claims, r.consumed, r.consumed_at, r.successor, r.family_revoked, r.expires_at, r.parent_hash, r.inserted_at FROM "attesto_refresh_tokens" r WHERE r.token_hash = :parent AND (:issuer::text IS NULL OR r.claims -> E'urn\x3aattesto\x3arefresh-token\x3aissuer' = to_jsonb(:issuer::text)) FOR UPDATE \gset p_
SELECT TRUE FROM "attesto_refresh_family_revocations" WHERE family_id = :family_id LIMIT 1;
SELECT TRUE FROM "attesto_refresh_tokens" WHERE family_id = :family_id AND family_revoked LIMIT 1;
\if :p_consumed
COMMIT;
\else
\set next_generation :p_generation + 1
SELECT TRUE FROM "attesto_refresh_tokens" WHERE family_id = :family_id AND generation = :next_generation::integer LIMIT 1;
SELECT TRUE FROM "attesto_refresh_tokens" WHERE token_hash = :child LIMIT 1;
UPDATE "attesto_refresh_tokens" SET consumed = true, consumed_at = :now::timestamp, successor = :successor::jsonb WHERE id = :p_id::uuid;
INSERT INTO "attesto_refresh_tokens" (id, token_hash, family_id, generation, client_id, subject, scope, resource, acr, auth_time, family_expires_at, attestation_jkt, cnf, claims, consumed, consumed_at, successor, family_revoked, expires_at, parent_hash, inserted_at) VALUES (gen_random_uuid(), :child, :family_id, :next_generation::integer, :client_id, :subject, :scope::varchar[], :resource::varchar[], NULL, NULL::bigint, NULL::bigint, NULL, NULL::jsonb, :claims::jsonb, false, NULL, NULL, false, :expires::timestamp, :parent, :now::timestamp) ON CONFLICT (token_hash) DO NOTHING;
COMMIT;
\endif
