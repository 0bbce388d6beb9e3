#!/usr/bin/env bash
# bench/compare/run.sh - oncestore side by side with PostgreSQL and Redis on
# the same single-use operations (see bench/compare/README.md), and
# oncestore's own PostgreSQL engine against pgbench running its statements
# on the same server.  On demand, not in CI.  Starts its own servers on
# 127.0.0.1 in a temporary directory and stops them by PID when it ends,
# also on failure or Ctrl-C.  Every measured run is bounded by time
# (--seconds: pgbench -T, oncebench --duration, redis-benchmark -n
# calibrated to it); the expected total is printed at the start (about 17
# minutes at the defaults on 2 cores).
#
#   bench/compare/run.sh [--seconds N] [--quick] [--rows N] [--ops a,b]
#                        [--oncebench PATH] [--head] [--keep]
#                        [--once-async LOOPSxINFLIGHT] (default 1x800)
#                        [--systems postgresql,redis,oncestore] (default all;
#                         postgresql includes oncestore on PostgreSQL)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=10 ROWS=1000000 OPS="replay,code_take,nonce_accept,refresh_rotate"
SYSTEMS="postgresql,redis,oncestore"
ONCEBENCH="" FROM_HEAD=0 KEEP=0
# pgbench: one thread per client, as oncebench --postgres has (with 2
# threads for 8 clients, rotate ran at 1,531 tps against 2,251 with 8, the
# median of 3 interleaved runs on 2 loaded cores: a pgbench thread
# descheduled stalls its 4 clients, which flattered the engine's share).
PG_CLIENTS=8 PG_THREADS=8 REDIS_CLIENTS=50 REDIS_PIPELINE=16 ONCE_THREADS=32
# oncestore at Redis's depth: one event-loop thread keeping 800 _async
# calls outstanding (oncebench --inflight), as Redis's one event loop has
# 50 connections x 16 pipelined = 800 requests in flight (README.md).
ONCE_LOOPS=1 ONCE_INFLIGHT=800
T_START=$(date +%s)
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds) SECS=$2; shift 2 ;;
	--quick) SECS=3 ROWS=300000; shift ;;
	--rows) ROWS=$2; shift 2 ;;
	--ops) OPS=$2; shift 2 ;;
	--oncebench) ONCEBENCH=$2; shift 2 ;;
	--head) FROM_HEAD=1; shift ;;
	--keep) KEEP=1; shift ;;
	--once-async) ONCE_LOOPS=${2%x*} ONCE_INFLIGHT=${2#*x}; shift 2 ;;
	--systems) SYSTEMS=$2; shift 2 ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
log() { printf '== %s\n' "$*" >&2; }

# ---- packages (a fresh Debian machine) ----
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v python3 >/dev/null || need+=(python3)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v pgbench >/dev/null || need+=(postgresql-client)
if [ -z "$ONCEBENCH" ]; then
	for p in meson ninja-build pkg-config gcc liburcu-dev libxxhash-dev libsodium-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
	done
fi
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
	# The Debian packages start a cluster / a server of their own; this
	# script uses none of them (it starts its own on free ports).
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PY="python3 $HERE/compare.py"

# ---- temporary directory, servers, cleanup ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/oncecompare.XXXXXX")
chmod 755 "$TMP"
PG_PID="" REDIS_PID=""
stop_pg() {
	if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
		kill -INT "$PG_PID" 2>/dev/null || true # fast shutdown
		for _ in $(seq 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PG_PID" 2>/dev/null || true
	fi
	PG_PID=""
}
stop_redis() {
	if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
		kill -TERM "$REDIS_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$REDIS_PID" 2>/dev/null || true
	fi
	REDIS_PID=""
}
cleanup() {
	rc=$?
	stop_pg
	stop_redis
	if [ "$KEEP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RESULTS=$TMP/results.jsonl
: >"$RESULTS"
record() { # op system mode callers ops p99_ms hit
	printf '{"op":"%s","system":"%s","mode":"%s","callers":"%s","ops":"%s","p99_ms":"%s","hit":"%s"}\n' \
		"$@" >>"$RESULTS"
}
has_op() { case ",$OPS," in *",$1,"*) return 0 ;; esac; return 1; }
has_system() { case ",$SYSTEMS," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- oncebench ----
if [ -z "$ONCEBENCH" ]; then
	if [ "$FROM_HEAD" = 1 ]; then
		log "building oncebench from git HEAD"
		mkdir "$TMP/src"
		git -C "$ROOT" archive HEAD | tar -x -C "$TMP/src"
		meson setup "$TMP/src/build" "$TMP/src" --buildtype=release >/dev/null
		ninja -C "$TMP/src/build" bench/oncebench >/dev/null
		ONCEBENCH=$TMP/src/build/bench/oncebench
	else
		log "building oncebench (release) in bench/compare/build"
		[ -d "$HERE/build" ] || meson setup "$HERE/build" "$ROOT" --buildtype=release >/dev/null
		ninja -C "$HERE/build" bench/oncebench >/dev/null
		ONCEBENCH=$HERE/build/bench/oncebench
	fi
fi

# What this oncebench can do (an older build lacks some options).  Read
# whole first: `oncebench --help | grep -q` under pipefail fails when grep
# exits before a help text longer than the pipe's buffer is written.
ONCEBENCH_HELP=$("$ONCEBENCH" --help)

# ---- PostgreSQL: pgbench, and oncestore's PostgreSQL engine ----
# Both on AttestoPhoenix 3.5.1's five tables (schema.sql) on the same
# server: pgbench runs the engine's own statements (pgbench/*.sql), and
# oncebench --postgres runs the engine itself through the public API, with
# as many clients (8) as pgbench, at each synchronous_commit: 'on' is the
# server's default, 'off' goes in the connection string
# (options='-c synchronous_commit=off'), so the engine's pool connects
# with it.  oncebench makes and prefills keys of its own on top of the
# pgbench rows (so both work on tables of the same size); each run starts
# from reset.sql (prefilled rows live again, added rows gone, VACUUM,
# CHECKPOINT), and oncebench settles its own prefill the same way
# (VACUUM ANALYZE, CHECKPOINT) before its clock starts.  Its keys per run
# are sized for the rates seen on 2 cores (keys cost ~60 us each to
# prefill through the API): a run stops after --seconds or when they run
# out.
ONCE_PG_KEYS_REPLAY=25000 ONCE_PG_KEYS_CLAIM=15000 ONCE_PG_KEYS_ROTATE=3000
pg_utc() { date -u -d "@$(($(date +%s) + $1))" '+%Y-%m-%d %H:%M:%S'; }
# What a rotation's sealed successor weighs: a constant v2 envelope as long
# as the engine's (its ciphertext is XCP. + 571 characters for the bench's
# child record and issuer claim).
pg_successor() {
	python3 -c 'import base64,os; print("{\"v\":2,\"ciphertext\":\"XCP.%s\",\"retry_until\":%d,\"child_hash\":\"%s\"}" % (base64.urlsafe_b64encode(os.urandom(428)).decode().rstrip("="), int(__import__("time").time()) + 60, base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")))'
}
pg_won() { # op: rows the run claimed or added
	case $1 in
	replay) psql -tAc "SELECT count(*) FROM dpop_replays" ;;
	code_take) psql -tAc "SELECT count(*) FROM attesto_authorization_codes WHERE consumed_at IS NOT NULL" ;;
	nonce_accept) psql -tAc "SELECT count(*) FROM dpop_nonces WHERE used_at IS NOT NULL" ;;
	refresh_rotate) psql -tAc "SELECT count(*) FROM attesto_refresh_tokens WHERE parent_hash IS NOT NULL" ;;
	esac
}
run_pg() {
	local pguser=$(id -un) as=()
	if [ "$(id -u)" -eq 0 ]; then
		pguser=postgres
		id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
		as=(runuser -u postgres --)
	fi
	mkdir -p "$TMP/pg" "$TMP/pglog"
	chown "$pguser" "$TMP/pg"
	chmod 777 "$TMP/pglog"
	local port; port=$(free_port)
	log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
	"${as[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -U bench --auth=trust -E UTF8 --no-sync >"$TMP/pg/initdb.log"
	"${as[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -o \
		"-c listen_addresses=127.0.0.1 -p $port -k $TMP/pg -c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=30min -c max_connections=50" \
		start >/dev/null
	PG_PID=$(head -1 "$TMP/pg/data/postmaster.pid")
	export PGHOST=127.0.0.1 PGPORT=$port PGUSER=bench PGDATABASE=postgres
	psql -q -v ON_ERROR_STOP=1 -f "$HERE/schema.sql" >/dev/null
	log "PostgreSQL: prefilling $ROWS codes, nonces, refresh tokens"
	psql -q -v ON_ERROR_STOP=1 -v rows="$ROWS" -f "$HERE/prefill.sql" >/dev/null
	local op mode out tps n won p99 wl keys conninfo
	local once_pg=1
	grep -q -- --postgres <<<"$ONCEBENCH_HELP" || once_pg=0
	[ $once_pg = 1 ] || log "  this oncebench has no --postgres: no 'oncestore on PostgreSQL' rows"
	for op in replay code_take nonce_accept refresh_rotate; do
		has_op "$op" || continue
		for mode in on off; do
			psql -q -v ON_ERROR_STOP=1 -f "$HERE/reset.sql" >/dev/null
			rm -f "$TMP"/pglog/*
			# The engine's parameters: now and the times it derives from it
			# (nonce ttl window, replay ttl 300 as oncebench uses, expiries
			# a day ahead), the bench record's fields, a sealed successor.
			out=$(PGOPTIONS="-c synchronous_commit=$mode" pgbench -n -M prepared -c "$PG_CLIENTS" \
				-j "$PG_THREADS" -T "$SECS" -D rows="$ROWS" -D now="$(pg_utc 0)" \
				-D fresh_from="$(pg_utc -86400)" -D replay_expires="$(pg_utc 300)" \
				-D expires="$(pg_utc 86400)" -D issuer=https://issuer.oncebench.example \
				-D client_id=bench-client -D subject=user-0001 \
				-D scope='{"openid","profile","offline_access"}' -D resource='{}' \
				-D claims='{"urn:attesto:refresh-token:issuer":"https://issuer.oncebench.example"}' \
				-D successor="$(pg_successor)" -f "$HERE/pgbench/$op.sql" \
				-l --log-prefix="$TMP/pglog/tx" 2>&1) || { echo "$out" >&2; return 1; }
			tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | tail -1)
			n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
			p99=$($PY pg-p99 "$TMP"/pglog/tx*)
			won=$(pg_won "$op")
			log "  pg $op synchronous_commit=$mode: $tps tps, p99 $p99 ms, $won of $n won"
			record "$op" postgresql "sync_commit=$mode" "$PG_CLIENTS" "$tps" "$p99" \
				"$(python3 -c "print(100.0*$won/max(1,$n))")"
		done
		[ $once_pg = 1 ] || continue
		case $op in
		code_take) wl=take keys=$((ONCE_PG_KEYS_CLAIM * SECS)) ;;
		nonce_accept) wl=$op keys=$((ONCE_PG_KEYS_CLAIM * SECS)) ;;
		refresh_rotate) wl=$op keys=$((ONCE_PG_KEYS_ROTATE * SECS)) ;;
		*) wl=$op keys=$((ONCE_PG_KEYS_REPLAY * SECS)) ;;
		esac
		for mode in on off; do
			psql -q -v ON_ERROR_STOP=1 -f "$HERE/reset.sql" >/dev/null
			conninfo="host=127.0.0.1 port=$port user=bench dbname=postgres"
			[ $mode = on ] || conninfo="$conninfo options='-c synchronous_commit=off'"
			"$ONCEBENCH" --postgres "$conninfo" --workload "$wl" --threads "$PG_CLIENTS" \
				--keys "$keys" --duration "$SECS" --runs 1 --json >"$TMP/once-pg.json"
			read -r tps p99 < <($PY once-json "$TMP/once-pg.json" "$wl")
			log "  oncestore on pg $op synchronous_commit=$mode: $tps ops/s, p99 $p99 ms"
			# oncebench stops at the first call that does not win: 100%.
			record "$op" oncestore-pg "sync_commit=$mode" "$PG_CLIENTS" "$tps" "$p99" 100
		done
	done
	stop_pg
}

# ---- Redis ----
NONCE_LUA="if redis.call('GET', KEYS[1]) == '0' then redis.call('SET', KEYS[1], '1', 'KEEPTTL') return 1 end return 0"
ROTATE_LUA="local p = redis.call('HMGET', KEYS[1], 'c', 'f') if p[1] ~= '0' then return 0 end if redis.call('EXISTS', 'revoked:' .. p[2]) == 1 then return -1 end redis.call('HSET', KEYS[1], 'c', '1', 'succ', ARGV[1]) redis.call('HSET', KEYS[2], 'c', '0', 'f', p[2], 'p', KEYS[1]) return 1"
# The keys each keyed operation starts from, as RESP for redis-cli --pipe,
# generated once per operation (python is the slow part of a fill).
redis_fill() { # op rcli...
	local op=$1; shift
	[ "$op" = replay ] && return 0
	[ -s "$TMP/fill-$op.resp" ] || $PY redis-fill "$ROWS" "$op" >"$TMP/fill-$op.resp"
	"$@" --pipe <"$TMP/fill-$op.resp" >/dev/null
}
run_redis() {
	local mode op port rcli n rps p99 hits0 hits1 hit cmd
	for mode in always everysec; do
		port=$(free_port)
		mkdir -p "$TMP/redis-$mode"
		redis-server --port "$port" --bind 127.0.0.1 --dir "$TMP/redis-$mode" --appendonly yes \
			--appendfsync "$mode" --save '' --daemonize no --logfile "$TMP/redis-$mode/server.log" &
		REDIS_PID=$!
		rcli=(redis-cli -h 127.0.0.1 -p "$port")
		for _ in $(seq 100); do "${rcli[@]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
		log "Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') appendfsync $mode on 127.0.0.1:$port"
		for op in replay code_take nonce_accept refresh_rotate; do
			has_op "$op" || continue
			"${rcli[@]}" flushall >/dev/null
			redis_fill "$op" "${rcli[@]}"
			local bench=(redis-benchmark -h 127.0.0.1 -p "$port" -c "$REDIS_CLIENTS" -P "$REDIS_PIPELINE" --csv)
			case $op in
			replay) cmd=(SET "jti:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I:__rand_int__" 1 NX EX 60); bench+=(-r 100000000000) ;;
			code_take) cmd=(GETDEL "code:__rand_int__"); bench+=(-r "$ROWS") ;;
			nonce_accept) cmd=(EVAL "$NONCE_LUA" 1 "nonce:__rand_int__"); bench+=(-r "$ROWS") ;;
			refresh_rotate) cmd=(EVAL "$ROTATE_LUA" 2 "rt:__rand_int__" "rt:child:__rand_int__" 00112233445566778899aabbccddeeff); bench+=(-r "$ROWS") ;;
			esac
			# Calibrate the count for about --seconds; keyed runs draw at most
			# half the prefilled keys (random draws: see hit%).
			"${bench[@]}" -n 20000 "${cmd[@]}" >"$TMP/rb.csv" 2>/dev/null
			n=$(python3 -c "import csv;r=list(csv.DictReader(open('$TMP/rb.csv')))[-1];print(int(float(r['rps'])*$SECS))")
			[ "$op" = replay ] || [ "$n" -le $((ROWS / 2)) ] || n=$((ROWS / 2))
			"${rcli[@]}" flushall >/dev/null
			redis_fill "$op" "${rcli[@]}"
			"${rcli[@]}" config resetstat >/dev/null
			"${bench[@]}" -n "$n" "${cmd[@]}" >"$TMP/rb.csv" 2>/dev/null
			read -r rps p99 < <($PY redis-csv "$TMP/rb.csv")
			case $op in
			replay) hit=$("${rcli[@]}" dbsize) ;;
			code_take) hit=$("${rcli[@]}" info stats | sed -n 's/^keyspace_hits:\([0-9]*\).*/\1/p') ;;
			nonce_accept) hit=$("${rcli[@]}" eval "local n=0 local c='0' repeat local r=redis.call('SCAN',c,'MATCH','nonce:*','COUNT',10000) c=r[1] for _,k in ipairs(r[2]) do if redis.call('GET',k)=='1' then n=n+1 end end until c=='0' return n" 0) ;;
			refresh_rotate) hit=$("${rcli[@]}" eval "local n=0 local c='0' repeat local r=redis.call('SCAN',c,'MATCH','rt:child:*','COUNT',10000) c=r[1] n=n+#r[2] until c=='0' return n" 0) ;;
			esac
			hit=$(python3 -c "print(100.0*${hit:-0}/max(1,$n))")
			log "  redis $op appendfsync $mode: $rps ops/s, p99 $p99 ms, n $n, hit $hit%"
			record "$op" redis "appendfsync $mode" "${REDIS_CLIENTS}x${REDIS_PIPELINE}" "$rps" "$p99" "$hit"
		done
		stop_redis
	done
}

# ---- oncestore ----
# Four rows per operation: 32 blocking callers and one event loop with
# ONCE_INFLIGHT _async calls outstanding, each under sync always and
# interval.  Each run stops after --seconds (oncebench --duration) or when
# its single-use keys run out, whichever comes first: keys cost time to
# make and prefill (about 5 us each), so they are sized for the rates seen
# on 2 cores (blocking always ~60k/s: the time bounds it; blocking interval
# ~100-150k/s and the async rows 300-500k/s: about half of --seconds).
# An oncebench without --inflight (an older build) skips the async rows.
ONCE_KEYS_BLOCKING_ALWAYS=70000 ONCE_KEYS_BLOCKING_INTERVAL=120000 ONCE_KEYS_ASYNC=200000
run_once() {
	local op wl mode keys ops p99 how args extra reopen=()
	local async=1
	grep -q -- --inflight <<<"$ONCEBENCH_HELP" || async=0
	grep -q -- --no-reopen <<<"$ONCEBENCH_HELP" && reopen=(--no-reopen)
	for op in replay code_take nonce_accept refresh_rotate; do
		has_op "$op" || continue
		case $op in code_take) wl=take ;; *) wl=$op ;; esac
		for how in blocking async; do
			[ $how = blocking ] || [ $async = 1 ] || continue
			for mode in always interval; do
				if [ $how = blocking ]; then
					args=(--threads "$ONCE_THREADS") extra=""
					if [ $mode = always ]; then keys=$((ONCE_KEYS_BLOCKING_ALWAYS * SECS)); else keys=$((ONCE_KEYS_BLOCKING_INTERVAL * SECS)); fi
				else
					args=(--threads "$ONCE_LOOPS" --inflight "$ONCE_INFLIGHT") extra=" async"
					keys=$((ONCE_KEYS_ASYNC * SECS))
				fi
				TMPDIR=$TMP "$ONCEBENCH" --durable --sync "$mode" --workload "$wl" --keys "$keys" \
					--duration "$SECS" --runs 1 --json "${reopen[@]}" "${args[@]}" >"$TMP/once.json"
				read -r ops p99 < <($PY once-json "$TMP/once.json" "$wl")
				log "  oncestore $op sync $mode${extra}: $ops ops/s, p99 $p99 ms"
				if [ $how = blocking ]; then
					record "$op" oncestore "$mode" "$ONCE_THREADS" "$ops" "$p99" 100
				else
					record "$op" oncestore "$mode async" "${ONCE_LOOPS}x${ONCE_INFLIGHT}" "$ops" "$p99" 100
				fi
			done
		done
	done
}

# What the runs above take, roughly, as measured on 2 shared cores and a
# virtio disk: PostgreSQL's prefill (~60 s per million rows) and each run's
# reset (UPDATE, VACUUM, CHECKPOINT: ~10 s per million); Redis's fills and
# calibration (~15 s per million); oncestore's keys and prefill (~5 us per
# key) and its raw-disk limit and close (~3 s); oncestore on PostgreSQL: a
# reset, its keys' prefill through the API (~60 us per key: about 0.9 s per
# second of run) and its open and settle (~2 s).
nops=$(echo "$OPS" | tr ',' '\n' | grep -c .)
EXPECT=$(awk -v sys=",$SYSTEMS," -v r="$ROWS" -v s="$SECS" -v n="$nops" -v ka="$ONCE_KEYS_BLOCKING_ALWAYS" \
	-v ki="$ONCE_KEYS_BLOCKING_INTERVAL" -v kx="$ONCE_KEYS_ASYNC" 'BEGIN { r /= 1e6;
	pg = 60 * r + n * 2 * (s + 10 * r + 1);
	pg += n * 2 * (1.9 * s + 10 * r + 2);
	redis = n * 2 * (1.1 * s + 15 * r + 2);
	once = n * (4 * (s + 3) + (ka + ki + 2 * kx) * s * 5e-6 - 2 * 0.4 * s);
	printf "%d", (sys ~ /postgresql/ ? pg : 0) + (sys ~ /redis/ ? redis : 0) + (sys ~ /oncestore/ ? once : 0) }')
log "expected total: about $(( (EXPECT + 59) / 60 )) min ($nops operations on $SYSTEMS, runs of at most $SECS s)"

log "$(nproc) cores, $SECS s per run, $ROWS prefilled keys; results in $RESULTS"
has_system postgresql && run_pg
has_system redis && run_redis
has_system oncestore && run_once
echo
echo "Side by side: $(nproc) cores, $SECS s per run, loopback, server and client on the same cores"
$PY table "$RESULTS"
took=$(( $(date +%s) - T_START ))
echo "(whole script: $((took / 60)) min $((took % 60)) s; expected about $(( (EXPECT + 59) / 60 )) min)"
[ "$KEEP" = 1 ] && cp "$RESULTS" "$HERE/build/results.jsonl" 2>/dev/null || true
