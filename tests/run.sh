#!/usr/bin/env bash
# tests/run.sh - the whole test suite, as CI runs it (see README "Tests").
#
# Installs what the build needs (Debian packages), then builds and tests
# three configurations in build-test-*/:
#   plain      every suite (unit, race, limits, crash, powerloss: the
#              power-loss simulator, plain builds only: it preloads a shim)
#   asan       AddressSanitizer + UndefinedBehaviorSanitizer, every suite
#   tsan       ThreadSanitizer, suites unit, race and pg (limits is a
#              single-threaded volume test, crash a kill -9 loop whose
#              children die mid-run: under TSan they would only be slow)
# Suite pg (the PostgreSQL engine, and the behavioural suites run again on
# it) uses a throwaway server that this script starts and stops.
# and ends with one line "N passed, N failed" counting every TAP test case.
# Exit status 0 only when nothing failed.
set -u
cd "$(dirname "$0")/.."

packages=(meson ninja-build pkg-config gcc python3 liburcu-dev libxxhash-dev libsodium-dev)
# The fuzz step (tests/fuzz/) builds with clang and libFuzzer.
packages+=(clang libclang-rt-dev)
# examples/uv_gateway.c (built and run in suite unit) needs libuv.
packages+=(libuv1-dev)
# The PostgreSQL engine (pg/) links libpq and jansson; suite pg runs a
# throwaway server (tests/pg/cluster.sh) and psql; the successor envelope's
# term-format checks compare with Erlang's own term_to_binary.
packages+=(libpq-dev libjansson-dev postgresql postgresql-client erlang-base)
# man/check_man.sh renders the man pages with groff and fails on a warning.
packages+=(groff-base)
# tests/check_prometheus.py reads once_stats_prometheus's text with a real
# Prometheus parser.
packages+=(python3-prometheus-client)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
		|| { echo "could not install ${missing[*]}"; echo "0 passed, 1 failed"; exit 1; }
fi

total_pass=0
total_fail=0

# Suite pg: a throwaway PostgreSQL on a Unix socket in a temporary
# directory, run as the postgres user, stopped by PID on exit (failure
# included).  The tests read ONCE_TEST_POSTGRES.
ONCE_TEST_PGDIR=""
stop_cluster() {
	[ -n "$ONCE_TEST_PGDIR" ] && bash tests/pg/cluster.sh stop "$ONCE_TEST_PGDIR"
}
trap stop_cluster EXIT
if ! eval "$(bash tests/pg/cluster.sh start)"; then
	echo "== could not start the throwaway PostgreSQL (tests/pg/cluster.sh)"
	echo "0 passed, 1 failed"
	exit 1
fi
export ONCE_TEST_POSTGRES ONCE_TEST_PGDIR

# Counts TAP "ok"/"not ok" lines per test in meson's JSON log; a test that
# failed without a "not ok" line (crash, timeout) counts as one failure.
count() {
	python3 - "$1" <<'PY'
import json, re, sys
ok = bad = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout") or ""
    o = len(re.findall(r"^ok \d+", out, re.M))
    n = len(re.findall(r"^not ok \d+", out, re.M))
    if t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and n == 0:
        n = 1
    ok += o; bad += n
print(ok, bad)
PY
}

# What a failed test printed: its "not ok" lines with the lines just
# before each (the assertion's message), and its last lines, so a failure
# seen only in CI can be told from the CI log.
failed_output() {
	python3 - "$1" "$2" <<'PY'
import json, re, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        continue
    out = ((t.get("stdout") or "") + (t.get("stderr") or "")).splitlines()
    print(f"== {sys.argv[2]}: {t['name']} {t.get('result')} after {t.get('duration', 0):.1f} s; what it printed:")
    shown = set()
    for i, l in enumerate(out):
        if re.match(r"not ok \d+", l):
            shown.update(range(max(0, i - 8), i + 1))
    shown.update(range(max(0, len(out) - 20), len(out)))
    for i in sorted(shown):
        print("   | " + out[i][:300])
PY
}

run_config() {
	local name=$1 suites=$2
	shift 2
	local dir="build-test-$name"
	echo "== $name: meson setup $*"
	if ! { meson setup --wipe "$dir" "$@" >/dev/null 2>&1 || meson setup "$dir" "$@"; } >"$dir.setup.log" 2>&1 \
		|| ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
		cat "$dir.setup.log" "$dir.build.log" 2>/dev/null | tail -30
		echo "== $name: build FAILED"
		total_fail=$((total_fail + 1))
		return
	fi
	local args=()
	for s in $suites; do args+=(--suite "$s"); done
	meson test -C "$dir" "${args[@]}" --print-errorlogs --num-processes 2 | grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout):"
	read -r p f < <(count "$dir/meson-logs/testlog.json")
	[ "$f" -eq 0 ] || failed_output "$dir/meson-logs/testlog.json" "$name"
	echo "== $name: $p passed, $f failed"
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
}

# The installed library, headers and pkg-config file, used the way the
# README says: cc prog.c $(pkg-config --cflags --libs oncestore).
check_install() {
	local dir=build-test-plain stage
	stage=$(mktemp -d)
	local ok=0
	if meson install -C "$dir" --destdir "$stage" >/dev/null 2>&1; then
		local pc
		pc=$(dirname "$(find "$stage" -name oncestore.pc | head -n1)")
		local libdir
		libdir=$(dirname "$(find "$stage" -name 'liboncestore.so' | head -n1)")
		if PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$pc" \
			cc -std=c11 -Wall -Wextra -Werror tests/consumer.c -o "$stage/consumer" \
			$(PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs oncestore) \
			&& LD_LIBRARY_PATH="$libdir" "$stage/consumer"; then
			ok=1
		fi
	fi
	rm -rf "$stage"
	if [ $ok -eq 1 ]; then
		echo "== install: pkg-config consumer passed"
		total_pass=$((total_pass + 1))
	else
		echo "== install: pkg-config consumer FAILED"
		total_fail=$((total_fail + 1))
	fi
}

# The optimized build the README's bench command makes must compile too
# (-O3 sees more, e.g. format truncation, and warnings are errors).
check_release_build() {
	if { meson setup --wipe build-test-release --buildtype=release >/dev/null 2>&1 ||
	     meson setup build-test-release --buildtype=release >/dev/null 2>&1; } &&
	   ninja -C build-test-release >build-test-release.log 2>&1; then
		echo "== release build: passed"
		total_pass=$((total_pass + 1))
	else
		tail -30 build-test-release.log
		echo "== release build: FAILED"
		total_fail=$((total_fail + 1))
	fi
}

# The libFuzzer targets (tests/fuzz/run.sh): each runs FUZZ_SECONDS (default
# 60) on a copy of its corpus, both at once; one passed/failed per target.
check_fuzz() {
	local log=build-fuzz.run.log
	bash tests/fuzz/run.sh "${FUZZ_SECONDS:-60}" >"$log" 2>&1
	grep -E "^# fuzz_|^(not )?ok " "$log" | sed 's/^/== fuzz: /'
	local p f
	p=$(grep -c "^ok " "$log")
	f=$(grep -c "^not ok " "$log")
	[ $((p + f)) -ge 2 ] || f=$((2 - p))
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
}

run_config plain "unit race limits crash powerloss pg"
check_install
check_release_build
check_fuzz
run_config asan "unit race limits crash pg" -Db_sanitize=address,undefined -Db_lundef=false
run_config tsan "unit race pg" -Db_sanitize=thread -Db_lundef=false

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
