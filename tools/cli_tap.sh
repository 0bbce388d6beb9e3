# tools/cli_tap.sh - what the tool's TAP scripts share (sourced, not run):
# a temporary directory $T removed on exit (and a $HOLDER process killed),
# TAP's ok / not_ok with the last run's output as diagnostics, and run,
# which calls the tool with stdout in $T/out, stderr in $T/err, status in
# $rc.
#
#   . "$(dirname "$0")/cli_tap.sh" NAME     (after ONCESTORE is set)
set -u
export LC_ALL=C

T=$(mktemp -d "${TMPDIR:-/tmp}/oncestore-$1-XXXXXX") || exit 1
HOLDER=
cleanup() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/#   /'; done
	if [ -s "$T/out" ]; then echo "#   stdout:"; sed 's/^/#     /' "$T/out" | head -40; fi
	if [ -s "$T/err" ]; then echo "#   stderr:"; sed 's/^/#     /' "$T/err" | head -40; fi
}
run() {
	"$ONCESTORE" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
