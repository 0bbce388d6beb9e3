#!/usr/bin/env bash
# bench/run.sh - the main job: build oncestore optimized and run the bench
# harness (see README "Measured").  With no arguments it runs, in about a
# minute on 2 cores:
#   1. every operation on the in-memory store: ops/s, p50/p99/p999/max
#      latency, bytes per entry, against the raw cds_lfht limits ('of raw':
#      lookup+CAS, for lookups; 'of ins': insert into a growing table, for
#      inserts);
#   2. the empty store: open, close, RSS growth (memory-only, fresh and
#      reopened data directory) and an empty checkpoint, against issue 10's
#      bars;
#   3. growth: code put and replay check from empty to 1,000,000 entries,
#      tables that grow against presized ones (o.presize_tables), 1 and 2
#      threads, one run each (3 runs would add ~25 s; issue 10's size is
#      bench/run.sh --workload growth --keys 10000000): ops/s, latency over
#      the whole fill and the ratios grow/presized;
#   4. code take on a store with a data directory (a fresh temporary one
#      under $TMPDIR per run, removed after), ONCE_SYNC_ALWAYS, 1/8/32
#      callers: ops/s, latency, records per fdatasync, syncs/s, log bytes
#      per op, CPU us and context switches per op, and as a fraction ('of
#      disk') of the durable limit it works against, measured in the same
#      run: raw log records of the same size through the same group commit
#      + fdatasync on the same disk; then the time to reopen (recover) the
#      data the last run wrote;
#   5. the same with the _async calls (--inflight): one event-loop thread
#      keeping 1 and 256 code takes outstanding, each row at most 2 s:
#      ops/s, latency submit -> durable and of the call itself, records per
#      fdatasync, CPU us and context switches per op, against the raw
#      group-commit limit at the batch it reached (pwrite + fdatasync, one
#      thread, a growing and a preallocated file);
#   6. recovery: once_open replaying 500,000 log records.
# Steps 1 and 4 also draw their figures as SVG charts:
# build-bench/oncebench-memory.svg and build-bench/oncebench-durable.svg.
# With arguments, they go to oncebench as they are, e.g.
#   bench/run.sh --keys 10000000 --threads 1,2,4
#   bench/run.sh --durable --sync interval --workload replay --threads 1,8,32
#   bench/run.sh --durable --workload take --threads 32,128,512 --keys 100000 --duration 5
#   bench/run.sh --inflight 1,64,256,1024 --workload take --keys 1000000 --duration 5
#   bench/run.sh --workload mix --threads 1,2 --duration 10 --keys 5000000
#   bench/run.sh --workload log --keys 5000 --threads 1,8,32   # the raw log alone
#   bench/run.sh --workload growth --keys 10000000 --threads 1,2 --runs 3
set -eu
cd "$(dirname "$0")/.."

packages=(meson ninja-build pkg-config gcc liburcu-dev libxxhash-dev libsodium-dev)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -d build-bench ] || meson setup build-bench --buildtype=release >/dev/null
ninja -C build-bench bench/oncebench >/dev/null
if [ $# -gt 0 ]; then
	exec ./build-bench/bench/oncebench "$@"
fi
./build-bench/bench/oncebench --svg build-bench/oncebench-memory.svg
echo
./build-bench/bench/oncebench --workload empty
echo
./build-bench/bench/oncebench --workload growth --keys 1000000 --threads 1,2 --runs 1
echo
./build-bench/bench/oncebench --durable --sync always --workload take --keys 5000 --threads 1,8,32 --runs 3 \
	--svg build-bench/oncebench-durable.svg
echo
./build-bench/bench/oncebench --inflight 1,256 --workload take --keys 100000 --duration 2 --runs 1
echo
./build-bench/bench/oncebench --workload recover --keys 500000 --runs 3
