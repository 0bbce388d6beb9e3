-- replay check: the statement oncestore's PostgreSQL engine runs for
-- once_replay_check (pg/replay.c replay_check_sql; AttestoPhoenix
-- check_and_record/2 in its ON CONFLICT form, ATTESTO-PG 2.4): one row
-- means first sight, none a replay.  $1 the key (a random 19-digit
-- number: pgbench makes no strings), $2 now + ttl, $3 now (run.sh:
-- -D replay_expires, -D now), all text.
\set k random(1000000000000000000, 9223372036854775806)
INSERT INTO "dpop_replays" (jti, expires_at, inserted_at) VALUES (:k, :replay_expires::timestamp, :now::timestamp) ON CONFLICT (jti) DO NOTHING;
