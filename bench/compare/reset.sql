-- bench/compare/reset.sql - between runs: every prefilled row live again,
-- the rows runs added gone, then a checkpoint so no run pays for another's.
UPDATE attesto_authorization_codes SET consumed_at = NULL WHERE consumed_at IS NOT NULL;
UPDATE dpop_nonces SET consumed_at = NULL WHERE consumed_at IS NOT NULL;
DELETE FROM attesto_refresh_tokens WHERE token_hash LIKE 'k%';
UPDATE attesto_refresh_tokens SET consumed_at = NULL, successor = NULL WHERE consumed_at IS NOT NULL;
TRUNCATE dpop_replays;
VACUUM ANALYZE;
CHECKPOINT;
