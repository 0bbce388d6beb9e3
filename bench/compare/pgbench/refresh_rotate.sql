-- refresh claim (rotation): under the family's advisory lock (sticky
-- revocation), consume the parent if unconsumed and unrevoked and insert its
-- successor in the same family, in one transaction.
\set id random(1, :rows)
\set child random(1, 1000000000000)
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('f' || lpad(CAST(:id AS text), 42, '0')));
WITH parent AS (
    UPDATE attesto_refresh_tokens SET consumed_at = now(), successor = '\x00112233445566778899aabbccddeeff'::bytea
    WHERE token_hash = 'r' || lpad(CAST(:id AS text), 42, '0')
      AND consumed_at IS NULL AND revoked_at IS NULL
    RETURNING token_hash, family_id, subject, client_id, generation, scope, expires_at)
INSERT INTO attesto_refresh_tokens (token_hash, family_id, subject, client_id, generation, scope,
                                    parent_hash, expires_at)
SELECT 'k' || lpad(CAST(:child AS text), 42, '0'), family_id, subject, client_id, generation + 1,
       scope, token_hash, expires_at
FROM parent
RETURNING token_hash;
COMMIT;
