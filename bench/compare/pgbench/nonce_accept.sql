-- nonce accept: the statement oncestore's PostgreSQL engine runs for
-- once_nonce_accept (pg/nonce.c nonce_accept_sql; AttestoPhoenix
-- accept/2, ATTESTO-PG 2.3).  $1 the nonce, $2 now, $3 now - ttl
-- (run.sh: -D now, -D fresh_from), all text; pgbench sends :now twice as
-- two parameters where the engine sends $2 once.
\set k 1000000000000000000 + random(1, :rows)
UPDATE "dpop_nonces" SET used_at = :now::timestamp WHERE nonce = :k AND used_at IS NULL AND issued_at >= :fresh_from::timestamp AND expires_at > :now::timestamp;
