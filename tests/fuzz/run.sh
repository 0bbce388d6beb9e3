#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - builds the fuzz targets (tests/fuzz/build.sh,
# into build-fuzz/) and runs each for SECONDS (default 60; FUZZ_SECONDS
# also sets it) on a scratch copy of its seed corpus (the checked-in
# corpora stay as they are), both at once (one core each).
#
# Prints per target the executions, the corpus size and the findings
# (crash / leak / timeout / oom files libFuzzer wrote, and background
# failures of fuzz_datadir, and the damaged directories it saves when a
# verdict fails), then TAP: "ok N - fuzz_api: ..." or
# "not ok"; exit status 0 only when no target found anything.  Findings
# are kept under build-fuzz/findings/ for study.
#
# Each run: -max_total_time=SECONDS -timeout=10 -rss_limit_mb=2048
# -detect_leaks=0 (stores are closed by background threads, so a leak
# check after each input would see their memory as in flight; LeakSanitizer
# still runs when the process exits).
set -u
cd "$(dirname "$0")/../.."
secs=${1:-${FUZZ_SECONDS:-60}}
out=build-fuzz
echo "== fuzz: building with ${CC:-clang}"
if ! bash tests/fuzz/build.sh "$out" >"$out.build.log" 2>&1; then
	tail -30 "$out.build.log"
	echo "1..2"
	echo "not ok 1 - fuzz_api: build failed"
	echo "not ok 2 - fuzz_datadir: build failed"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/oncestore-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/findings"

run_one() {
	local t=$1 corpus=$2
	mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
	cp tests/fuzz/"$corpus"/* "$work/$t/corpus/" 2>/dev/null
	(cd "$work/$t/artifacts" &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$OLDPWD/$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
			-detect_leaks=0 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
			"$work/$t/corpus" >"$work/$t/log" 2>&1)
	echo $? >"$work/$t/rc"
}

echo "== fuzz: fuzz_api and fuzz_datadir, ${secs}s each, in parallel"
run_one fuzz_api corpus_api &
run_one fuzz_datadir corpus_datadir &
wait

echo "1..2"
n=0 failed=0
for t in fuzz_api fuzz_datadir; do
	n=$((n + 1))
	rc=$(cat "$work/$t/rc")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -n1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t/log" | tail -n1)
	corp=$(ls "$work/$t/corpus" | wc -l)
	found=$(ls "$work/$t/artifacts" | wc -l)
	if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then
		found=1 # died without an artifact (a background failure, a signal)
	fi
	echo "# $t: ${execs:-0} executions (${rate:-0}/s), corpus $corp inputs, findings: $found"
	if [ "$found" -eq 0 ] && [ "$rc" -eq 0 ]; then
		echo "ok $n - $t: ${execs:-0} executions, findings: 0"
	else
		failed=$((failed + 1))
		mkdir -p "$out/findings/$t"
		cp -a "$work/$t/artifacts"/* "$out/findings/$t/" 2>/dev/null # datadir-failure-* are directories
		cp "$work/$t/log" "$out/findings/$t/log"
		grep -E "MISMATCH|FAILED|ERROR|SUMMARY|runtime error" "$work/$t/log" | head -5 | sed 's/^/# /'
		echo "not ok $n - $t: exit $rc, findings: $found (kept in $out/findings/$t/)"
	fi
done
[ "$failed" -eq 0 ]
