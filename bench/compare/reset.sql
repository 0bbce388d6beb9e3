-- bench/compare/reset.sql - before every measured run (pgbench or
-- oncebench --postgres): every prefilled row live again, the rows earlier
-- runs added gone (pgbench's children, oncebench's keys: anything whose key
-- is not one of prefill.sql's), then VACUUM ANALYZE and a checkpoint, so no
-- run pays for another's.
DELETE FROM attesto_authorization_codes WHERE code_hash !~ '^1[0-9]{18}$';
UPDATE attesto_authorization_codes SET consumed_at = NULL WHERE consumed_at IS NOT NULL;
DELETE FROM dpop_nonces WHERE nonce !~ '^1[0-9]{18}$';
UPDATE dpop_nonces SET used_at = NULL WHERE used_at IS NOT NULL;
DELETE FROM attesto_refresh_tokens WHERE token_hash !~ '^1[0-9]{18}$';
UPDATE attesto_refresh_tokens SET consumed = false, consumed_at = NULL, successor = NULL WHERE consumed;
TRUNCATE attesto_refresh_family_revocations, dpop_replays;
VACUUM ANALYZE;
CHECKPOINT;
