#!/usr/bin/env bash
# tools/test_cli_checkpoint.sh - TAP tests of `oncestore checkpoint` and
# `oncestore verify` on the snapshot files of two checkpoints at one start
# sequence (issue 13):
#
#   bash tools/test_cli_checkpoint.sh path/to/oncestore path/to/oncestore-fill
#
# The tool opens a store with its own (default) shard count, not the one
# the application used.  A checkpoint it takes right after the
# application's (nothing logged in between) has the same start sequence:
# it must never replace a file of the committed checkpoint, must leave no
# orphan snapshot behind, and the store must hold exactly what it held.
# verify must name every file recovery does not read.  (A crash at every
# step of such a checkpoint is tests/test_checkpoint.c.)
ONCESTORE=${1:?usage: test_cli_checkpoint.sh ONCESTORE FILL}
FILL=${2:?usage: test_cli_checkpoint.sh ONCESTORE FILL}

. "$(dirname "$0")/cli_tap.sh" cli-cp

# The snapshot files of DIR with their inode and content hash, sorted.
snaps_of() { (cd "$1" && for f in snap-*; do [ -e "$f" ] && echo "$f $(stat -c %i "$f") $(sha256sum <"$f")"; done); }
# The CHECKPOINT line's start (hex) and part count.
cp_start() { cut -d' ' -f3 "$1/CHECKPOINT"; }
cp_parts() { cut -d' ' -f4 "$1/CHECKPOINT"; }
# Every snapshot file of DIR is one CHECKPOINT names, and it names them all.
only_named() {
	local d=$1 s p want got
	s=$(cp_start "$d")
	p=$(cp_parts "$d")
	want=$(for ((i = 0; i < p; i++)); do printf 'snap-%s-%04x-%04x\n' "$s" "$p" "$i"; done)
	got=$(cd "$d" && ls snap-* 2>/dev/null)
	[ "$want" = "$got" ]
}

# The tool's shard count, and another one.
"$FILL" "$T/probe" --none >/dev/null 2>&1
run stats --json "$T/probe"
N=$(sed -n 's/.*"shards":\([0-9]*\).*/\1/p' "$T/out")
if [ -z "$N" ]; then
	not_ok "the tool's shard count" "stats --json printed no shards"
	echo "1..$n"
	exit 1
fi
if [ "$N" -eq 16 ]; then M=4; else M=16; fi
echo "# the tool opens with $N shards; the application here with $M"

# ---- the issue: an application checkpoint with M shards, then the tool's with N ----
A=$T/a
"$FILL" "$A" --shards "$M" --checkpoint >/dev/null 2>&1 || not_ok "fill --shards $M --checkpoint"
run dump "$A"
cp "$T/out" "$T/dump.a"
start=$(cp_start "$A")
if [ "$(cp_parts "$A")" -eq "$M" ] && only_named "$A"; then
	ok "the application's checkpoint names its $M snapshots snap-S-P-<shard>, and only those exist"
else
	not_ok "the application's checkpoint names its $M snapshots snap-S-P-<shard>" "$(ls "$A")"
fi
run checkpoint "$A"
if [ "$rc" -eq 0 ] && [ "$(cp_start "$A")" = "$start" ] && [ "$(cp_parts "$A")" -eq "$N" ]; then
	ok "the tool's checkpoint with $N shards commits at the same start sequence"
else
	not_ok "the tool's checkpoint with $N shards commits at the same start sequence" "exit status $rc"
fi
if only_named "$A"; then
	ok "no orphan snapshot files: exactly the $N CHECKPOINT names remain"
else
	not_ok "no orphan snapshot files: exactly the $N CHECKPOINT names remain" "$(ls "$A")"
fi
run verify "$A"
if [ "$rc" -eq 0 ] && ! grep -q "^note:" "$T/out"; then ok "verify: clean, no leftover noted"
else not_ok "verify: clean, no leftover noted" "exit status $rc"; fi
run dump "$A"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump.a"; then ok "the store holds exactly what it held"
else not_ok "the store holds exactly what it held" "exit status $rc"; fi

# ---- and back: the application (M shards) checkpoints at that start again ----
"$FILL" "$A" --none --shards "$M" --checkpoint >/dev/null 2>&1 || not_ok "fill --none --shards $M --checkpoint"
run dump "$A"
if [ "$(cp_start "$A")" = "$start" ] && [ "$(cp_parts "$A")" -eq "$M" ] && only_named "$A" &&
	cmp -s "$T/out" "$T/dump.a"; then
	ok "a checkpoint with $M shards at the same start again: its files only, same content"
else
	not_ok "a checkpoint with $M shards at the same start again: its files only, same content" "$(ls "$A")"
fi

# ---- the same shard count at the same start: the committed files untouched ----
B=$T/b
"$FILL" "$B" --shards "$N" --checkpoint >/dev/null 2>&1 || not_ok "fill --shards $N --checkpoint"
snaps_of "$B" >"$T/snaps.b"
cp "$B/CHECKPOINT" "$T/checkpoint.b"
run checkpoint "$B"
if [ "$rc" -eq 0 ] && snaps_of "$B" | cmp -s - "$T/snaps.b" && cmp -s "$B/CHECKPOINT" "$T/checkpoint.b" &&
	grep -q "kept .*snap-" "$T/out"; then
	ok "a checkpoint equal to the committed one (same start, same shards) replaces none of its files"
else
	not_ok "a checkpoint equal to the committed one (same start, same shards) replaces none of its files" \
		"exit status $rc" "before: $(cat "$T/snaps.b")" "after: $(snaps_of "$B")"
fi

# ---- verify names every leftover, whatever its start ----
s=$(cp_start "$A")
p=$(printf '%04x' "$(cp_parts "$A")")
first=$(cd "$A" && ls snap-* | head -n1)
firstlog=$(cd "$A" && ls log-* | head -n1)
leftovers=(
	"snap-$s-$p-$p"          # the committed start and part count, a part past the count
	"snap-$s-$(printf '%04x' "$N")-0000" # the committed start, another part count
	"snap-$s-0000"           # the committed start, the previous release's form
	"snap-$s-$p-0000.tmp"    # an interrupted write
	"log-0000000000000001"   # a segment the checkpoint covers
	"junk"                   # not an oncestore file
)
for f in "${leftovers[@]}"; do cp "$A/$first" "$A/$f"; done
if [ "$firstlog" != "log-0000000000000001" ]; then cp "$A/$firstlog" "$A/log-0000000000000001"; fi
run verify "$A"
missing=
for f in "${leftovers[@]}"; do grep -q "^note: $A/$f: " "$T/out" || missing="$missing $f"; done
named=$(grep -c "^note: .*/$first: \|^note: .*/CHECKPOINT" "$T/out")
if [ "$rc" -eq 0 ] && [ -z "$missing" ] && [ "$named" -eq 0 ]; then
	ok "verify notes every leftover (same start: part past the count, other count, old form; .tmp, covered segment, foreign)"
else
	not_ok "verify notes every leftover" "exit status $rc, not noted:$missing, committed files noted: $named"
fi
"$FILL" "$A" --none >/dev/null 2>&1; rc=$?  # a writable open (stats is read-only)
left=$(cd "$A" && ls | grep -v -e '^FORMAT$' -e '^CHECKPOINT$' -e '^log-[0-9a-f]*$' -e '^junk$' -e '^snap-[0-9a-f-]*$')
if [ "$rc" -eq 0 ] && only_named "$A" && [ -z "$left" ] && [ ! -e "$A/log-0000000000000001" ]; then
	ok "the next open removes every leftover but the foreign file"
else
	not_ok "the next open removes every leftover but the foreign file" "exit status $rc" "$(ls "$A")"
fi
run dump "$A"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump.a"; then ok "and the store still holds exactly what it held"
else not_ok "and the store still holds exactly what it held" "exit status $rc"; fi

echo "1..$n"
[ "$failed" -eq 0 ]
