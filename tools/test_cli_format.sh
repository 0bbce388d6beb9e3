#!/usr/bin/env bash
# tools/test_cli_format.sh - TAP tests of `oncestore repair --format`, which
# rebuilds a lost or damaged FORMAT from the log segments' and snapshots'
# headers (tools/repair_format.c).
#
#   bash tools/test_cli_format.sh path/to/oncestore path/to/oncestore-fill
ONCESTORE=${1:?usage: test_cli_format.sh ONCESTORE FILL}
FILL=${2:?usage: test_cli_format.sh ONCESTORE FILL}

. "$(dirname "$0")/cli_tap.sh" format

# verdict DESCRIPTION CONDITION...: ok when the condition (a command) succeeds.
verdict() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what" "exit status $rc"; fi
}
fingerprint() { (cd "$1" && ls -l --time-style=+ . && sha256sum -- *) 2>/dev/null; }
# flip_bit FILE OFFSET BIT: inverts one bit
flip_bit() {
	python3 -c 'import sys
p, o, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = bytearray(open(p, "rb").read()); d[o] ^= 1 << b; open(p, "wb").write(d)' "$1" "$2" "$3"
}
# A store with log segments and snapshots: content, a checkpoint, more content.
make_store() {
	"$ONCESTORE" init "$1" >/dev/null &&
		"$FILL" "$1" --tag "$2" >/dev/null &&
		"$FILL" "$1" --tag "$2-2" --checkpoint >/dev/null &&
		"$FILL" "$1" --tag "$2-3" >/dev/null
}

D=$T/data
if make_store "$D" a; then ok "a store with log segments and snapshots"
else not_ok "a store with log segments and snapshots"; fi
cp "$D/FORMAT" "$T/FORMAT.orig"
uid=$(cut -d' ' -f3 "$T/FORMAT.orig")
run dump "$D"
cp "$T/out" "$T/dump.before"

run repair --help
verdict "repair --help lists --format" grep -q -- "--format" "$T/out"
run repair --format --truncate-only "$D"
verdict "--format with --truncate-only is a usage error (exit 2)" test "$rc" -eq 2

# ---- FORMAT lost ----
rm "$D/FORMAT"
run dump "$D"
rc_dump=$rc
run verify "$D"
verdict "without FORMAT the store does not open and does not verify" test "$rc_dump" -ne 0 -a "$rc" -ne 0
verdict "verify names the fix: oncestore repair --format --yes DIR" \
	grep -q -- "FORMAT is missing beside store files .*oncestore repair --format --yes $D" "$T/err"
before=$(fingerprint "$D")
run repair --format "$D"
verdict "repair --format without --yes prints the rebuild, writes nothing, exits 1" \
	test "$rc" -eq 1 -a ! -e "$D/FORMAT" -a "$before" = "$(fingerprint "$D")" -a -n "$(grep "FORMAT is missing" "$T/out")" \
	-a -n "$(grep "rebuild .*store uid $uid" "$T/out")"
run repair --format --yes "$D"
verdict "repair --format --yes rebuilds FORMAT as it was (same bytes, mode 0600) and says it verifies clean" \
	test "$rc" -eq 0 -a -n "$(grep "verifies clean" "$T/out")" -a "$(stat -c %a "$D/FORMAT" 2>/dev/null)" = 600 \
	-a "$(cat "$D/FORMAT" 2>/dev/null)" = "$(cat "$T/FORMAT.orig")"
verdict "no FORMAT.tmp is left behind" test ! -e "$D/FORMAT.tmp"
run verify "$D"
verdict "verify after the rebuild exits 0 (clean)" test "$rc" -eq 0
run dump "$D"
verdict "the store opens and dumps what it held before FORMAT was lost" cmp -s "$T/out" "$T/dump.before"

# ---- FORMAT valid: nothing to do ----
before=$(fingerprint "$D")
run repair --format --yes "$D"
verdict "repair --format of a valid FORMAT refuses (exit 1), nothing to rebuild, nothing changed" \
	test "$rc" -eq 1 -a -n "$(grep "nothing to rebuild" "$T/err")" -a "$before" = "$(fingerprint "$D")"

# ---- FORMAT damaged ----
flip_bit "$D/FORMAT" 3 0 # "oncestore" -> "oncdstore": does not parse
run verify "$D"
rc_verify=$rc
run repair --format --yes "$D"
verdict "a FORMAT with a bit flipped in its text is rebuilt, saying what was wrong" \
	test "$rc_verify" -ne 0 -a "$rc" -eq 0 -a -n "$(grep "FORMAT does not parse" "$T/out")" \
	-a "$(cat "$D/FORMAT")" = "$(cat "$T/FORMAT.orig")"
# A flipped bit in the uid that leaves a hex digit: FORMAT parses, but
# names a uid no file's header names.
off=$(( $(grep -bo ' [0-9a-f]*$' "$T/FORMAT.orig" | cut -d: -f1) + 1 ))
python3 -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
d = bytearray(open(p, "rb").read()); d[o] = ord("0") if d[o] != ord("0") else ord("1"); open(p, "wb").write(d)' "$D/FORMAT" "$off"
run repair --format --yes "$D"
verdict "a FORMAT naming another uid than every header is rebuilt, naming both uids" \
	test "$rc" -eq 0 -a -n "$(grep "FORMAT names store uid .*every file's header $uid" "$T/out")" \
	-a "$(cat "$D/FORMAT")" = "$(cat "$T/FORMAT.orig")"
run verify "$D"
verdict "verify after the damaged FORMAT's rebuild exits 0" test "$rc" -eq 0

# ---- the headers disagree: a segment copied from another store ----
E=$T/other
make_store "$E" b >/dev/null
other_uid=$(cut -d' ' -f3 "$E/FORMAT")
seg=$(ls "$E" | grep '^log-' | head -n1)
cp "$E/$seg" "$D/log-00000000000000ff"
rm "$D/FORMAT"
before=$(fingerprint "$D")
run repair --format --yes "$D"
verdict "headers naming two stores: refused (exit 1), nothing written, both uids and the foreign file named" \
	test "$rc" -eq 1 -a ! -e "$D/FORMAT" -a "$before" = "$(fingerprint "$D")" \
	-a -n "$(grep "disagree" "$T/err")" -a -n "$(grep "$uid" "$T/err")" \
	-a -n "$(grep "store uid $other_uid, format version 2: log-00000000000000ff" "$T/err")"
rm "$D/log-00000000000000ff"
run repair --format --yes "$D"
verdict "with the foreign segment moved away, FORMAT is rebuilt" test "$rc" -eq 0 -a -e "$D/FORMAT"

# ---- no header carries the uid ----
F=$T/bare
mkdir -m 700 "$F"
cp "$E/$seg" "$F/$seg"
flip_bit "$F/$seg" 20 0 # inside the uid: the header's checksum fails
run repair --format --yes "$F"
verdict "no intact header: refused (exit 1), nothing written" \
	test "$rc" -eq 1 -a ! -e "$F/FORMAT" -a -n "$(grep "no log segment or snapshot header carries the store uid" "$T/err")"

# ---- the lock ----
rm -f "$T/release"
"$FILL" "$D" --none --hold 60 --until "$T/release" >"$T/hold.out" 2>"$T/hold.err" &
HOLDER=$!
for _ in $(seq 1 400); do
	grep -q holding "$T/hold.out" 2>/dev/null && break
	sleep 0.05
done
run repair --format --yes "$D"
verdict "repair --format while a store holds the directory reports ONCE_LOCKED" \
	test "$rc" -eq 1 -a -n "$(grep ONCE_LOCKED "$T/err")"
touch "$T/release"
wait "$HOLDER"
HOLDER=

echo "1..$n"
[ "$failed" -eq 0 ]
