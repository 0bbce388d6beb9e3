#!/usr/bin/env bash
# tests/pg/cluster.sh - a throwaway PostgreSQL for suite pg.
#
#   tests/pg/cluster.sh start      starts one in a new temporary directory and
#                                  prints shell lines that export
#                                  ONCE_TEST_POSTGRES (the libpq connection
#                                  string) and ONCE_TEST_PGDIR (the directory)
#   tests/pg/cluster.sh env DIR    prints those lines again for a running one
#   tests/pg/cluster.sh stop DIR   stops it (by its PID) and removes DIR
#   tests/pg/cluster.sh restart DIR
#                                  crashes and restarts it (pg_ctl restart
#                                  -m immediate: the server recovers from its
#                                  log, as after a failover), for the fault
#                                  tests
#
# From tests/run.sh, stopped on failure too:
#
#   eval "$(tests/pg/cluster.sh start)" || exit 1
#   trap 'tests/pg/cluster.sh stop "$ONCE_TEST_PGDIR"' EXIT
#   meson test -C build --suite pg     # the tests read ONCE_TEST_POSTGRES
#
# The server is Debian's newest (/usr/lib/postgresql/*/bin, or PGBIN), on a
# Unix socket in DIR only (no TCP port is opened), with trust
# authentication for the superuser "postgres" and fsync off: nothing in it
# outlives the test run.  PostgreSQL refuses to run as root, so as root it
# runs as the user postgres (created when missing), like
# bench/compare/run.sh does.  Progress and errors go to stderr; only the
# export lines go to stdout.
set -u

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

# A directory this script made: it holds the marker, so stop never removes
# anything else.
MARKER=oncestore-test-cluster

pg_bin() {
	local bin=${PGBIN:-}
	if [ -z "$bin" ]; then
		bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	fi
	[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || die "no PostgreSQL server found (apt-get install postgresql, or set PGBIN)"
	echo "$bin"
}

print_env() {
	local dir=$1
	printf "export ONCE_TEST_PGDIR='%s'\n" "$dir"
	printf "export ONCE_TEST_POSTGRES='host=%s user=postgres dbname=postgres'\n" "$dir"
}

start() {
	local bin dir as=() owner
	bin=$(pg_bin) || exit 1
	dir=$(mktemp -d "${TMPDIR:-/tmp}/oncepg.XXXXXX") || die "mktemp failed"
	touch "$dir/$MARKER"
	owner=$(id -un)
	if [ "$(id -u)" -eq 0 ]; then
		owner=postgres
		id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres ||
			die "cannot create the user postgres"
		as=(runuser -u postgres --)
	fi
	chown "$owner" "$dir" || die "chown $dir failed"
	if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
		>"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		rm -rf "$dir"
		die "initdb failed"
	fi
	if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
		"-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null; then
		cat "$dir/server.log" >&2
		rm -rf "$dir"
		die "the server did not start"
	fi
	head -1 "$dir/data/postmaster.pid" >"$dir/pid"
	echo "cluster.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $dir (pid $(cat "$dir/pid"))" >&2
	print_env "$dir"
}

stop() {
	local dir=$1 bin pid as=()
	[ -f "$dir/$MARKER" ] || die "$dir: not a directory this script made"
	[ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
	pid=$(cat "$dir/pid" 2>/dev/null)
	# Only that PID while it is still a postgres serving DIR (not a reused PID).
	if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/data"; then
		bin=$(pg_bin) && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 20 stop >/dev/null 2>&1
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	rm -rf "$dir"
}

restart() {
	local dir=$1 bin as=()
	[ -f "$dir/$MARKER" ] || die "$dir: not a directory this script made"
	[ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
	bin=$(pg_bin) || exit 1
	# pg_ctl restart keeps the options the server was started with.
	"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m immediate -w -t 60 restart \
		>/dev/null || die "restart failed"
	head -1 "$dir/data/postmaster.pid" >"$dir/pid"
}

case "${1:-}" in
start) start ;;
restart)
	[ -n "${2:-}" ] || die "usage: cluster.sh restart DIR"
	restart "$2"
	;;
env)
	[ -n "${2:-}" ] && [ -f "$2/$MARKER" ] || die "usage: cluster.sh env DIR (a directory cluster.sh start made)"
	print_env "$2"
	;;
stop)
	[ -n "${2:-}" ] || die "usage: cluster.sh stop DIR"
	stop "$2"
	;;
*) die "usage: cluster.sh start | env DIR | stop DIR | restart DIR" ;;
esac
