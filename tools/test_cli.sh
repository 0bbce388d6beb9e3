#!/usr/bin/env bash
# tools/test_cli.sh - TAP tests of the `oncestore` command line tool.
#
#   bash tools/test_cli.sh path/to/oncestore path/to/oncestore-fill
#
# oncestore-fill (tools/fill.c) gives a store real content of every kind,
# including refresh successors whose plaintext must never show.  Damage is
# made by flipping one byte in the middle of a file (python3).
ONCESTORE=${1:?usage: test_cli.sh ONCESTORE FILL}
FILL=${2:?usage: test_cli.sh ONCESTORE FILL}

. "$(dirname "$0")/cli_tap.sh" cli

# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what" "failed: $*"; fi
}
# expect_rc WANT DESCRIPTION: checks the last run's status.
expect_rc() {
	if [ "$rc" -eq "$1" ]; then ok "$2"; else not_ok "$2" "exit status $rc, expected $1"; fi
}
flip() { # flip FILE OFFSET: inverts one byte
	python3 -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[o] ^= 0xff; open(p, "wb").write(b)' "$1" "$2"
}
fingerprint() { (cd "$1" && ls -l --time-style=+ . && sha256sum -- *) 2>/dev/null; }
size_of() { stat -c %s "$1"; }
# reopen: a store's own open and close of $D, writing nothing (stats and
# dump open read-only, so this is what cuts a torn tail); stderr in
# $T/reopen.err.
reopen() { "$FILL" "$D" --none >/dev/null 2>"$T/reopen.err"; }
# The damaged file and offset from verify's message "DIR/FILE: offset N: why".
damage_of() { sed -n 's|^oncestore verify: .*/\([^/:]*\): offset \([0-9]*\): .*|\1 \2|p' "$T/err" | head -n1; }

D=$T/data

# ---- usage ----
run --help
if [ "$rc" -eq 0 ] && grep -q init "$T/out" && grep -q verify "$T/out" && grep -q stats "$T/out" &&
	grep -q dump "$T/out" && grep -q checkpoint "$T/out" && grep -q repair "$T/out"; then
	ok "oncestore --help exits 0 and lists every command"
else
	not_ok "oncestore --help exits 0 and lists every command" "exit status $rc"
fi
# Issue 13: --version worked but --help did not list it.
run --help
help_out=$(cat "$T/out")
run --version
if grep -q -- "--version" <<<"$help_out" && [ "$rc" -eq 0 ] && grep -Eq '^oncestore [0-9]+\.[0-9]+\.[0-9]+ ' "$T/out"; then
	ok "--help lists --version, and --version prints the version"
else
	not_ok "--help lists --version, and --version prints the version" "exit status $rc"
fi
for c in init verify stats dump checkpoint repair; do
	run "$c" --help
	if [ "$rc" -eq 0 ] && grep -q "usage: oncestore $c" "$T/out"; then
		ok "$c --help exits 0 with its usage"
	else
		not_ok "$c --help exits 0 with its usage" "exit status $rc"
	fi
done
run
expect_rc 2 "no command exits 2"
run frobnicate "$D"
expect_rc 2 "unknown command exits 2"
run verify
expect_rc 2 "verify without DIR exits 2"
run verify --bogus "$D"
expect_rc 2 "unknown option exits 2"
run verify "$D" "$D.other"
expect_rc 2 "two directories exit 2"

# ---- missing directory: nothing is created ----
run verify "$D"
if [ "$rc" -eq 1 ] && [ ! -e "$D" ] && grep -q "$D" "$T/err"; then
	ok "verify on a missing directory exits 1, names it, creates nothing"
else
	not_ok "verify on a missing directory exits 1, names it, creates nothing" "exit status $rc"
fi
for c in stats dump checkpoint repair; do
	run "$c" "$D"
	if [ "$rc" -eq 1 ] && [ ! -e "$D" ]; then
		ok "$c on a missing directory exits 1 and creates nothing"
	else
		not_ok "$c on a missing directory exits 1 and creates nothing" "exit status $rc"
	fi
done

# ---- init ----
run init "$D"
if [ "$rc" -eq 0 ] && [ "$(stat -c %a "$D")" = 700 ] && [ "$(stat -c %a "$D/FORMAT")" = 600 ]; then
	ok "init creates the directory 0700 with FORMAT 0600"
else
	not_ok "init creates the directory 0700 with FORMAT 0600" "exit status $rc"
fi
before=$(fingerprint "$D")
run init "$D"
if [ "$rc" -eq 1 ] && grep -q "already" "$T/err" && [ "$before" = "$(fingerprint "$D")" ]; then
	ok "init refuses a directory that already holds a store, changing nothing"
else
	not_ok "init refuses a directory that already holds a store, changing nothing" "exit status $rc"
fi
mkdir "$T/foreign" && echo hello >"$T/foreign/notes.txt"
run init "$T/foreign"
if [ "$rc" -eq 1 ] && [ ! -e "$T/foreign/FORMAT" ] && grep -q CORRUPT "$T/err"; then
	ok "init refuses a non-empty foreign directory (ONCE_CORRUPT), writes no FORMAT"
else
	not_ok "init refuses a non-empty foreign directory (ONCE_CORRUPT), writes no FORMAT" "exit status $rc"
fi
mkdir -m 755 "$T/empty"
run init "$T/empty"
if [ "$rc" -eq 0 ] && [ "$(stat -c %a "$T/empty")" = 700 ] && [ -e "$T/empty/FORMAT" ]; then
	ok "init of an existing empty directory makes it a store and sets mode 0700"
else
	not_ok "init of an existing empty directory makes it a store and sets mode 0700" "exit status $rc"
fi
run verify "$T/foreign"
expect_rc 1 "verify of a directory without FORMAT exits 1"

# ---- verify a fresh store ----
run verify "$D"
if [ "$rc" -eq 0 ] && grep -q clean "$T/out"; then ok "verify of a fresh store exits 0 (clean)"
else not_ok "verify of a fresh store exits 0 (clean)" "exit status $rc"; fi

# ---- content ----
if "$FILL" "$D" >"$T/fill.out" 2>"$T/err"; then ok "fill writes every kind"
else not_ok "fill writes every kind"; fi
entries=$(sed -n 's/^entries //p' "$T/fill.out")
run verify "$D"
expect_rc 0 "verify after writes exits 0"

run dump "$D"
cp "$T/out" "$T/dump1"
lines=$(wc -l <"$T/dump1")
if [ "$rc" -eq 0 ] && [ -n "$entries" ] && [ "$lines" -eq "$entries" ] && [ "$lines" -gt 20 ]; then
	ok "dump prints one line per entry ($lines)"
else
	not_ok "dump prints one line per entry" "exit status $rc, $lines lines, fill reported '$entries'"
fi
if python3 -c 'import json, sys
kinds = set()
for line in open(sys.argv[1]):
    kinds.add(json.loads(line)["kind"])
want = {"code", "access_token", "access_family", "refresh", "refresh_family", "nonce", "replay"}
sys.exit(0 if kinds == want else 1)' "$T/dump1"; then
	ok "every dump line is JSON, and every kind is there"
else
	not_ok "every dump line is JSON, and every kind is there"
fi
# Issue 13: a token of a revoked family said only "consumed":false.
if python3 -c 'import json, sys
want = {"refresh": {"rt-rev-a": True, "rt-a": False}, "access_token": {"code-fam-a": True}}
seen = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["kind"] in want:
        f = e["family_id"]
        assert e.get("revoked") is want[e["kind"]][f], line
        seen[(e["kind"], f)] = True
assert len(seen) == 3, seen' "$T/dump1"; then
	ok "dump: every token of a revoked family says revoked:true, other tokens revoked:false"
else
	not_ok "dump: every token of a revoked family says revoked:true, other tokens revoked:false"
fi
if LC_ALL=C sort -c "$T/dump1" 2>/dev/null; then ok "dump lines are sorted"
else not_ok "dump lines are sorted"; fi
if grep -q successor_sealed_bytes "$T/dump1" && ! grep -q "SUCCESSOR-PLAINTEXT" "$T/dump1" &&
	! grep -q "code-secret-" "$T/dump1" && ! grep -q "refresh-secret-" "$T/dump1"; then
	ok "dump shows sealed successors only: no plaintext, no secrets"
else
	not_ok "dump shows sealed successors only: no plaintext, no secrets"
fi
if ! grep -rqa -e "SUCCESSOR-PLAINTEXT" -e "code-secret-" -e "refresh-secret-" "$D"; then
	ok "no successor plaintext or secret in the data files"
else
	not_ok "no successor plaintext or secret in the data files"
fi

# ---- text in dump (issue 13): UTF-8 as is, other bytes as {"b64": ...} ----
# Each value is stored as a replay key and (without a NUL) as a code's
# subject and client_id and a refresh token's subject (tools/fill.c --text).
# The dump must be valid UTF-8 JSON, and decoding each field must give back
# exactly the bytes stored.
TEXTS="4a6f73c3a920e282ac f09f9880 09225c0a017f fffe80c328 c0af eda080 f4908080 e282 6e756c006279746500"
U=$T/text
run init "$U"
text_args=()
for h in $TEXTS; do text_args+=(--text "$h"); done
"$FILL" "$U" "${text_args[@]}" >/dev/null 2>"$T/err" || not_ok "fill --text"
run dump "$U"
if [ "$rc" -eq 0 ] && grep -q '"subject":"José €"' "$T/out" && python3 - "$T/out" $TEXTS <<'PY'
import base64, hashlib, json, sys
raw = open(sys.argv[1], "rb").read()
text = raw.decode("utf-8")  # strict: the whole dump is valid UTF-8
def stored(v):
    if isinstance(v, str):
        return v.encode("utf-8")
    assert isinstance(v, dict) and set(v) == {"b64"}, v
    return base64.b64decode(v["b64"], validate=True)
def key_of(secret):
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).rstrip(b"=").decode()
lines = [json.loads(l) for l in text.splitlines()]
replays = {stored(e["key"]) for e in lines if e["kind"] == "replay"}
by_key = {(e["kind"], e["key"]): e for e in lines if e["kind"] in ("code", "refresh")}
for i, h in enumerate(sys.argv[2:]):
    want = bytes.fromhex(h)
    assert want in replays, ("replay key", want)
    if b"\0" in want:
        continue
    c = by_key[("code", key_of("text-code-%d" % i))]
    r = by_key[("refresh", key_of("text-refresh-%d" % i))]
    for got in (c["subject"], c["client_id"], r["subject"]):
        assert stored(got) == want, (got, want)
        # valid UTF-8 is a string, anything else the b64 object
        try:
            want.decode("utf-8")
            assert isinstance(got, str), got
        except UnicodeDecodeError:
            assert isinstance(got, dict), got
PY
then
	ok "dump: valid UTF-8 JSON; UTF-8 fields as text, others as {\"b64\"}, every field decodes to the bytes stored"
else
	not_ok "dump: valid UTF-8 JSON; UTF-8 fields as text, others as {\"b64\"}, every field decodes to the bytes stored" "exit status $rc"
fi
run dump --help
if grep -q '{"b64":' "$T/out" && grep -q "UTF-8" "$T/out"; then ok "dump --help documents the text encoding"
else not_ok "dump --help documents the text encoding"; fi

# ---- stats ----
run stats "$D"
if [ "$rc" -eq 0 ] && grep -Eq '^codes +6 ' "$T/out" && grep -q recovery "$T/out" &&
	grep -q "log records replayed" "$T/out"; then
	ok "stats prints entries per kind and recovery figures"
else
	not_ok "stats prints entries per kind and recovery figures" "exit status $rc"
fi
run stats --json "$D"
if [ "$rc" -eq 0 ] && python3 -c 'import json, os, sys
s = json.load(open(sys.argv[1]))
files = [f for f in os.listdir(sys.argv[2]) if os.path.isfile(os.path.join(sys.argv[2], f))]
size = sum(os.path.getsize(os.path.join(sys.argv[2], f)) for f in files)
assert s["entries"]["codes"] == 6, s["entries"]
assert s["entries"]["replays"] == 4 and s["entries"]["nonces"] == 3, s["entries"]
assert s["recovery"]["log_records"] > 0 and s["recovery"]["ns"] > 0, s["recovery"]
assert s["files"]["count"] == len(files) and s["files"]["bytes"] == size, (s["files"], len(files), size)
' "$T/out" "$D"; then
	ok "stats --json parses, with entries, recovery and files on disk"
else
	not_ok "stats --json parses, with entries, recovery and files on disk" "exit status $rc"
fi

# ---- checkpoint ----
run checkpoint "$D"
if [ "$rc" -eq 0 ] && [ -e "$D/CHECKPOINT" ] && ls "$D"/snap-* >/dev/null 2>&1 &&
	grep -q "checkpoint committed" "$T/out" && grep -q "removed log-" "$T/out"; then
	ok "checkpoint writes snapshots and CHECKPOINT, reports the segments it removed"
	cp "$T/out" "$T/checkpoint.out"
else
	not_ok "checkpoint writes snapshots and CHECKPOINT, reports the segments it removed" "exit status $rc"
fi
# Issue 13: the start sequence was printed in decimal only, the snapshot
# files carry it in hex.
seq_check() { python3 -c 'import os, re, sys
m = re.search(r"start sequence (\d+) \(hex ([0-9a-f]+), as in (snap-[0-9a-f]+-)\*\)", open(sys.argv[1]).read())
assert m, "no start sequence in both forms"
dec, hx, prefix = int(m.group(1)), int(m.group(2), 16), m.group(3)
assert dec == hx, (dec, hx)
snaps = [f for f in os.listdir(sys.argv[2]) if f.startswith("snap-")]
assert snaps and all(f.startswith(prefix) for f in snaps), (prefix, snaps)
assert int(prefix[5:-1], 16) == dec, prefix' "$T/out" "$D"; }
if grep -q "start sequence" "$T/checkpoint.out" && cp "$T/checkpoint.out" "$T/out" && seq_check; then
	ok "checkpoint prints its start sequence in decimal and in the hex of the snapshot file names"
else
	not_ok "checkpoint prints its start sequence in decimal and in the hex of the snapshot file names"
fi
run verify "$D"
if [ "$rc" -eq 0 ] && grep -q "snapshot records" "$T/out"; then ok "verify after checkpoint exits 0"
else not_ok "verify after checkpoint exits 0" "exit status $rc"; fi
if seq_check; then ok "verify prints the start sequence as the snapshot files name it"
else not_ok "verify prints the start sequence as the snapshot files name it"; fi
run dump "$D"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump1"; then ok "dump after checkpoint is unchanged"
else not_ok "dump after checkpoint is unchanged" "exit status $rc"; fi

# More content after the checkpoint, in the log.
"$FILL" "$D" --tag b >"$T/fill.out" 2>"$T/err" || not_ok "fill --tag b"
entries2=$(sed -n 's/^entries //p' "$T/fill.out")

# ---- foreign file types (issue 9): a FIFO named like a store file ----
for name in log-00000000000000fe CHECKPOINT; do
	[ -e "$D/$name" ] && mv "$D/$name" "$T/$name.keep"
	mkfifo "$D/$name"
	timeout 20 "$ONCESTORE" verify "$D" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -eq 1 ] && grep -q "$name" "$T/err" && grep -q "not a regular file" "$T/err"; then
		ok "verify refuses a FIFO named $name as foreign, naming it (no hang)"
	else
		not_ok "verify refuses a FIFO named $name as foreign, naming it (no hang)" "exit status $rc (124: it blocked)"
	fi
	rm -f "$D/$name"
	[ -e "$T/$name.keep" ] && mv "$T/$name.keep" "$D/$name"
done

# ---- the lock ----
rm -f "$T/release"
"$FILL" "$D" --none --hold 60 --until "$T/release" >"$T/hold.out" 2>"$T/hold.err" &
HOLDER=$!
for _ in $(seq 1 400); do
	grep -q holding "$T/hold.out" 2>/dev/null && break
	sleep 0.05
done
before=$(fingerprint "$D")
# Issue 13: the inspecting commands read a directory a running store holds
# (options.read_only: no lock, nothing written); the changing ones do not.
run verify "$D"
if [ "$rc" -eq 0 ] && grep -q ": clean" "$T/out"; then ok "verify while a store holds the directory reads it: clean"
else not_ok "verify while a store holds the directory reads it: clean" "exit status $rc"; fi
run dump "$D"
cp "$T/out" "$T/dump-held"
if [ "$rc" -eq 0 ] && [ -s "$T/dump-held" ] && [ ! -s "$T/err" ]; then ok "dump while a store holds the directory prints its entries"
else not_ok "dump while a store holds the directory prints its entries" "exit status $rc"; fi
run stats "$D"
if [ "$rc" -eq 0 ] && grep -q "^codes " "$T/out" && grep -q "opened read-only: this run wrote nothing" "$T/out"; then
	ok "stats while a store holds the directory prints its figures, and says its own log figures are none"
else not_ok "stats while a store holds the directory prints its figures" "exit status $rc"; fi
run repair --yes "$D"
if [ "$rc" -ne 0 ] && grep -q ONCE_LOCKED "$T/err"; then ok "repair while a store holds the directory reports ONCE_LOCKED"
else not_ok "repair while a store holds the directory reports ONCE_LOCKED" "exit status $rc"; fi
# Issue 13: every error was printed twice, the library's log line and the
# tool's own; now one line, with the status and the library's detail.
run checkpoint "$D"
if [ "$rc" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
	grep -q "^oncestore checkpoint: $D: once_open: ONCE_LOCKED: held by another store" "$T/err"; then
	ok "checkpoint while held fails with one line on stderr: ONCE_LOCKED and the library's reason"
else
	not_ok "checkpoint while held fails with one line on stderr: ONCE_LOCKED and the library's reason" "exit status $rc"
fi
if [ "$before" = "$(fingerprint "$D")" ]; then ok "nothing changed while the store held the directory"
else not_ok "nothing changed while the store held the directory"; fi
touch "$T/release"
wait "$HOLDER"
hold_rc=$?
HOLDER=
run dump "$D"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump-held"; then ok "dump while held equals dump after the store closed"
else not_ok "dump while held equals dump after the store closed" "exit status $rc"; fi
if [ "$hold_rc" -eq 0 ]; then ok "the holding store closed cleanly"
else not_ok "the holding store closed cleanly" "fill exit status $hold_rc"; fi

run dump "$D"
cp "$T/out" "$T/dump2"
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$T/dump2")" -eq "$entries2" ]; then ok "dump after more writes: $entries2 lines"
else not_ok "dump after more writes" "exit status $rc, want $entries2 lines"; fi

# ---- damage in a log segment ----
seg=$(ls -S "$D"/log-* | head -n1)
segsize=$(size_of "$seg")
flip "$seg" $((segsize / 2))
run verify "$D"
read -r bad_file bad_at <<<"$(damage_of)"
if [ "$rc" -eq 1 ] && [ "$bad_file" = "$(basename "$seg")" ] && [ -n "$bad_at" ] &&
	[ "$bad_at" -le $((segsize / 2)) ] && [ "$bad_at" -ge 64 ] && [ $((bad_at % 8)) -eq 0 ]; then
	ok "verify finds a flipped byte in a log segment: exit 1, names $bad_file at offset $bad_at"
else
	not_ok "verify finds a flipped byte in a log segment: exit 1, names the file and offset" \
		"exit status $rc, damage '${bad_file:-} ${bad_at:-}', flipped $(basename "$seg") at $((segsize / 2))"
fi
run dump "$D"
if [ "$rc" -eq 1 ] && grep -q CORRUPT "$T/err" && grep -q "$(basename "$seg")" "$T/err"; then
	ok "the store refuses to open (ONCE_CORRUPT naming the file)"
else
	not_ok "the store refuses to open (ONCE_CORRUPT naming the file)" "exit status $rc"
fi
for c in dump stats checkpoint; do
	run "$c" "$D"
	if [ "$rc" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
		grep -q "^oncestore $c: $D: once_open: ONCE_CORRUPT: .*$(basename "$seg") at offset [0-9]" "$T/err"; then
		ok "$c of a damaged store prints the error once: ONCE_CORRUPT, the file and the offset"
	else
		not_ok "$c of a damaged store prints the error once: ONCE_CORRUPT, the file and the offset" "exit status $rc"
	fi
done
before=$(fingerprint "$D")
run repair "$D"
if [ "$rc" -eq 1 ] && [ "$before" = "$(fingerprint "$D")" ] && grep -q "dry run" "$T/out" &&
	grep -q "truncate .*$(basename "$seg") at offset $bad_at" "$T/out"; then
	ok "repair without --yes prints the truncation, changes nothing, exits 1"
else
	not_ok "repair without --yes prints the truncation, changes nothing, exits 1" "exit status $rc"
fi
cp -a "$D" "$T/trunc"
run repair --yes --truncate-only "$T/trunc"
tseg=$T/trunc/$(basename "$seg")
if [ "$rc" -eq 0 ] && [ -e "$tseg" ] && [ "$(size_of "$tseg")" -eq "$bad_at" ] &&
	grep -q "records that still pass their checksums" "$T/out" && grep -q "dropped .* of \"" "$T/out"; then
	ok "repair --yes --truncate-only cuts the segment at offset $bad_at, lists dropped spends"
else
	not_ok "repair --yes --truncate-only cuts the segment at the damage, lists dropped spends" \
		"exit status $rc, size now $(size_of "$tseg" 2>/dev/null), damage at ${bad_at:-}"
fi
run repair --yes "$D"
if [ "$rc" -eq 0 ] && [ -e "$seg" ] && [ "$(size_of "$seg")" -ge "$bad_at" ] &&
	cmp -s -n "$bad_at" "$seg" "$tseg" && grep -q "truncate .* at offset $bad_at" "$T/out" &&
	grep -q "re-assert" "$T/out" && grep -q "repaired (1 fix)" "$T/out"; then
	ok "repair --yes cuts at offset $bad_at and re-asserts the spends found after it"
else
	not_ok "repair --yes cuts at the damage and re-asserts the spends found after it" \
		"exit status $rc, size now $(size_of "$seg" 2>/dev/null), damage at ${bad_at:-}"
fi
if ! ls "$D"/log-* | awk -v s="$seg" '$0 > s' | grep -q .; then ok "repair removed the segments after the damaged one"
else not_ok "repair removed the segments after the damaged one" "$(ls "$D")"; fi
run verify "$D"
expect_rc 0 "verify after repair exits 0"
run dump "$D"
got=$(wc -l <"$T/out")
if [ "$rc" -eq 0 ] && [ "$got" -gt 0 ] && [ "$got" -lt "$entries2" ]; then
	ok "the repaired store opens and dumps ($got of $entries2 entries remain)"
else
	not_ok "the repaired store opens and dumps" "exit status $rc, $got lines"
fi
run repair "$D"
if [ "$rc" -eq 0 ] && grep -q "nothing to repair" "$T/out"; then ok "repair of a clean directory exits 0: nothing to repair"
else not_ok "repair of a clean directory exits 0: nothing to repair" "exit status $rc"; fi

# ---- damage in a snapshot ----
run checkpoint "$D"
expect_rc 0 "checkpoint of the repaired store"
run dump "$D"
cp "$T/out" "$T/dump3"
entries3=$(wc -l <"$T/dump3")
snap=$(ls -S "$D"/snap-* | head -n1)
snapsize=$(size_of "$snap")
flip "$snap" $((snapsize / 2))
run verify "$D"
read -r bad_file bad_at <<<"$(damage_of)"
if [ "$rc" -eq 1 ] && [ "$bad_file" = "$(basename "$snap")" ] && [ -n "$bad_at" ] &&
	[ "$bad_at" -le $((snapsize / 2)) ]; then
	ok "verify finds a flipped byte in a snapshot: exit 1, names $bad_file at offset $bad_at"
else
	not_ok "verify finds a flipped byte in a snapshot: exit 1, names the file and offset" \
		"exit status $rc, damage '${bad_file:-} ${bad_at:-}', flipped $(basename "$snap")"
fi
before=$(fingerprint "$D")
run repair "$D"
if [ "$rc" -eq 1 ] && [ "$before" = "$(fingerprint "$D")" ] && grep -q "rewrite .*$(basename "$snap")" "$T/out"; then
	ok "repair without --yes prints the snapshot rewrite, changes nothing, exits 1"
else
	not_ok "repair without --yes prints the snapshot rewrite, changes nothing, exits 1" "exit status $rc"
fi
run repair --yes "$D"
if [ "$rc" -eq 0 ] && grep -q "new end mark counting" "$T/out" && [ "$(size_of "$snap")" -lt "$snapsize" ] &&
	[ "$(stat -c %a "$snap")" = 600 ] && ! ls "$D"/*.tmp >/dev/null 2>&1; then
	ok "repair --yes rewrites the snapshot (valid prefix, new end mark, mode 0600)"
else
	not_ok "repair --yes rewrites the snapshot (valid prefix, new end mark, mode 0600)" "exit status $rc"
fi
run verify "$D"
expect_rc 0 "verify after the snapshot repair exits 0"
run dump "$D"
got=$(wc -l <"$T/out")
if [ "$rc" -eq 0 ] && [ "$got" -gt 0 ] && [ "$got" -lt "$entries3" ]; then
	ok "the store opens after the snapshot repair ($got of $entries3 entries remain)"
else
	not_ok "the store opens after the snapshot repair" "exit status $rc, $got lines of $entries3"
fi
if python3 - "$T/dump3" "$T/out" >"$T/spent.check" <<'PY'
import json, sys
# Spent or not: a finalized code whose finalize was the damaged record
# comes back taken, which is still spent (a second take gets NOT_FOUND).
rank = {"live": 0, "taken": 1, "finalized": 1, "fresh": 0, "used": 1}
before = {}
for line in open(sys.argv[1]):
    e = json.loads(line); before[(e["kind"], e["key"])] = e
bad = []
for line in open(sys.argv[2]):
    e = json.loads(line); b = before.get((e["kind"], e["key"]))
    if e["kind"].endswith("family"):
        continue  # a lost family image comes back from its tokens (see the report)
    if b is None:
        bad.append("new entry " + line.strip())
    elif "state" in e and rank[e["state"]] < rank[b["state"]]:
        bad.append("less spent: " + line.strip())
    elif e.get("consumed") is False and b.get("consumed") is True:
        bad.append("unconsumed: " + line.strip())
for x in bad:
    print(x)
sys.exit(1 if bad else 0)
PY
then
	ok "no entry left after the snapshot repair is new or unspent where it was spent"
else
	not_ok "no entry left after the snapshot repair is new or unspent where it was spent" "$(cat "$T/spent.check")"
fi

# ---- damage in CHECKPOINT ----
run dump "$D"
cp "$T/out" "$T/dump4"
flip "$D/CHECKPOINT" 30
run verify "$D"
if [ "$rc" -eq 1 ] && grep -q "/CHECKPOINT: offset 0" "$T/err"; then ok "verify finds a damaged CHECKPOINT"
else not_ok "verify finds a damaged CHECKPOINT" "exit status $rc"; fi
run repair --yes "$D"
if [ "$rc" -eq 0 ] && grep -q "rewrite .*CHECKPOINT" "$T/out"; then
	ok "repair --yes rewrites CHECKPOINT from the one checkpoint's snapshots"
else
	not_ok "repair --yes rewrites CHECKPOINT from the one checkpoint's snapshots" "exit status $rc"
fi
run dump "$D"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump4"; then ok "after the CHECKPOINT repair the store holds what it held"
else not_ok "after the CHECKPOINT repair the store holds what it held" "exit status $rc"; fi

# ---- damaged log segment header: rebuilt, nothing dropped ----
"$FILL" "$D" --tag c >/dev/null 2>"$T/err" || not_ok "fill --tag c"
run dump "$D"
cp "$T/out" "$T/dump5"
seg=$(ls -S "$D"/log-* | head -n1)
flip "$seg" 20
run verify "$D"
if [ "$rc" -eq 1 ] && grep -q "$(basename "$seg"): offset 0: bad log segment header" "$T/err"; then
	ok "verify finds a damaged segment header"
else
	not_ok "verify finds a damaged segment header" "exit status $rc"
fi
run repair --yes "$D"
if [ "$rc" -eq 0 ] && grep -q "rewrite the header" "$T/out"; then ok "repair rewrites the header from the first record"
else not_ok "repair rewrites the header from the first record" "exit status $rc"; fi
run dump "$D"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump5"; then ok "after the header repair nothing is lost"
else not_ok "after the header repair nothing is lost" "exit status $rc"; fi

# ---- a torn tail in the newest segment is not corruption ----
newest=$(ls "$D"/log-* | sort | tail -n1)
printf 'half a record' >>"$newest"
run verify "$D"
if [ "$rc" -eq 0 ] && grep -q "torn tail of 13 bytes" "$T/out"; then ok "verify: a torn tail of the newest segment is a note, exit 0"
else not_ok "verify: a torn tail of the newest segment is a note, exit 0" "exit status $rc"; fi
run repair "$D"
expect_rc 0 "repair leaves a torn tail to the next open (exit 0)"
# Issue 13: stats and dump wrote to a stopped store's directory (a new
# segment each run, the torn tail cut); read-only now, they leave it be.
before=$(fingerprint "$D")
run dump "$D"
if [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump5" && grep -q "not a complete record" "$T/err" &&
	[ "$before" = "$(fingerprint "$D")" ]; then
	ok "dump reads past a torn tail and leaves it in place: every file byte-identical"
else not_ok "dump reads past a torn tail and leaves it in place: every file byte-identical" "exit status $rc"; fi
run stats "$D"
if [ "$rc" -eq 0 ] && [ "$before" = "$(fingerprint "$D")" ]; then ok "stats leaves every file byte-identical"
else not_ok "stats leaves every file byte-identical" "exit status $rc"; fi
# ... and says so: the torn tail was found and left, not cut.
if grep -q "13 torn tail bytes found, left in place" "$T/out" && ! grep -q "bytes cut" "$T/out"; then
	ok "stats: a torn tail read-only is found and left in place, not cut"
else not_ok "stats: a torn tail read-only is found and left in place, not cut"; fi
reopen
run dump "$D"
if grep -q "^oncestore: warning: .*torn tail" "$T/reopen.err" && [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump5"; then
	ok "open cuts the torn tail with a warning on stderr, state unchanged"
else
	not_ok "open cuts the torn tail with a warning on stderr, state unchanged" "exit status $rc"
fi

# ---- preallocated segments: zeros after the records are unused space (issue 11) ----
zseg=$(ls "$D"/log-* | sort | tail -n1)
zsize=$(size_of "$zseg")
head -c 4194304 /dev/zero >>"$zseg"
run verify "$D"
if [ "$rc" -eq 0 ] && grep -q "4194304 bytes preallocated" "$T/out" && ! grep -qi "torn\|corrupt" "$T/out" "$T/err"; then
	ok "verify: 4 MiB of zeros after the newest segment's records are reported as preallocated, exit 0"
else not_ok "verify: 4 MiB of zeros after the newest segment's records are reported as preallocated, exit 0" "exit status $rc"; fi
before=$(fingerprint "$D")
run repair --yes "$D"
if [ "$rc" -eq 0 ] && grep -q "nothing to repair" "$T/out" && grep -q "4194304 bytes preallocated" "$T/out" &&
	! grep -qi "dropped\|truncate\|torn" "$T/out" && [ "$before" = "$(fingerprint "$D")" ]; then
	ok "repair: zeros after the records are nothing to repair, nothing dropped, nothing changed"
else not_ok "repair: zeros after the records are nothing to repair, nothing dropped, nothing changed" "exit status $rc"; fi
reopen
run dump "$D"
if [ "$rc" -eq 0 ] && ! grep -q "warning" "$T/reopen.err" && cmp -s "$T/out" "$T/dump5"; then
	ok "open with a preallocated newest segment: no torn-tail warning, state unchanged"
else not_ok "open with a preallocated newest segment: no torn-tail warning, state unchanged" "exit status $rc"; fi
# That open started a new segment: the preallocated one is older now.
run verify "$D"
if [ "$rc" -eq 0 ] && ! grep -qi "torn" "$T/out"; then ok "verify: zeros after an older segment's records are clean"
else not_ok "verify: zeros after an older segment's records are clean" "exit status $rc"; fi
# A torn tail with zeros after it: still a torn tail of its non-zero bytes.
newest=$(ls "$D"/log-* | sort | tail -n1)
printf 'half a record' >>"$newest"
head -c 4096 /dev/zero >>"$newest"
run verify "$D"
if [ "$rc" -eq 0 ] && grep -q "torn tail of 13 bytes" "$T/out" && grep -q "bytes preallocated" "$T/out"; then
	ok "verify: a torn tail followed by zeros is a torn tail of 13 bytes plus preallocated zeros, exit 0"
else not_ok "verify: a torn tail followed by zeros is a torn tail of 13 bytes plus preallocated zeros, exit 0" "exit status $rc"; fi
reopen
run dump "$D"
if [ "$rc" -eq 0 ] && grep -q "^oncestore: warning: .*torn tail" "$T/reopen.err" && cmp -s "$T/out" "$T/dump5"; then
	ok "open cuts a torn tail followed by zeros with a warning, state unchanged"
else not_ok "open cuts a torn tail followed by zeros with a warning, state unchanged" "exit status $rc"; fi
# Damage inside a preallocated segment's records: repair drops the bytes
# from the damage to the last record, and reports the zeros apart.
cp -a "$D" "$T/zdamage"
zd=$(ls -S "$T/zdamage"/log-* | grep -v "/$(basename "$zseg")$" | head -n1)
recs_end=$(size_of "$zd")
head -c 4194304 /dev/zero >>"$zd"
flip "$zd" $((recs_end - 40))
run verify "$T/zdamage"
read -r bad_file bad_at <<<"$(damage_of)"
run repair "$T/zdamage"
# The dropped bytes end at the last non-zero one (a record's zero padding
# counts with the zeros); the two add up to everything after the damage.
dropped=$(sed -n 's/.*drop \([0-9]*\) bytes from the damaged record on.*/\1/p' "$T/out" | head -n1)
zeros=$(sed -n 's/.*and \([0-9]*\) bytes preallocated.*/\1/p' "$T/out" | head -n1)
if [ "$rc" -eq 1 ] && [ -n "${bad_at:-}" ] && [ -n "$dropped" ] && [ -n "$zeros" ] && [ "$dropped" -gt 0 ] &&
	[ "$dropped" -le $((recs_end - bad_at)) ] && [ "$zeros" -ge 4194304 ] &&
	[ $((dropped + zeros)) -eq $((recs_end - bad_at + 4194304)) ]; then
	ok "repair of damage before preallocated zeros drops $dropped bytes and reports the $zeros zeros apart"
else
	not_ok "repair of damage before preallocated zeros drops the record bytes and reports the zeros apart" \
		"exit status $rc, damage at ${bad_at:-?}, records end at $recs_end"
fi

# ---- a CHECKPOINT the log never reaches: covered segments removed ----
E=$T/short
run init "$E"
"$FILL" "$E" >/dev/null 2>&1
old=$(ls -S "$E"/log-* | head -n1)
head -c 1000 "$old" >"$T/old-segment"
run checkpoint "$E"
run dump "$E"
cp "$T/out" "$T/dump6"
rm -f "$E"/log-*
install -m 600 "$T/old-segment" "$old"
run verify "$E"
if [ "$rc" -eq 1 ] && grep -q "CHECKPOINT: offset 0: log ends before the checkpoint's start" "$T/err"; then
	ok "verify: a log that ends before the checkpoint's start is damage"
else
	not_ok "verify: a log that ends before the checkpoint's start is damage" "exit status $rc"
fi
run repair --yes "$E"
rc_repair=$rc
run dump "$E"
if [ "$rc_repair" -eq 0 ] && [ "$rc" -eq 0 ] && cmp -s "$T/out" "$T/dump6"; then
	ok "repair removes the covered segments; nothing is lost"
else
	not_ok "repair removes the covered segments; nothing is lost" "repair exit $rc_repair, dump exit $rc"
fi

# ---- a damaged spend in a snapshot must not bring its entry back unspent ----
G=$T/spent
run init "$G"
"$FILL" "$G" --checkpoint >/dev/null 2>&1
run dump "$G"
cp "$T/out" "$T/dump7"
# The first code_take record (type 2) of any snapshot: damage its payload.
target=
for f in "$G"/snap-*; do
	at=$(python3 -c 'import sys
b = open(sys.argv[1], "rb").read(); o = 64
while o + 32 <= len(b):
    n = int.from_bytes(b[o + 8:o + 12], "little")
    if b[o + 12] == 2:
        print(o); break
    o += 32 + n + (8 - n % 8) % 8' "$f")
	if [ -n "$at" ]; then target="$f $at"; break; fi
done
read -r tfile tat <<<"$target"
if [ -n "${tat:-}" ]; then
	flip "$tfile" $((tat + 32))
	run repair --yes "$G"
	rc_repair=$rc
	run dump "$G"
	added=$(comm -13 "$T/dump7" "$T/out" | grep -v '"kind":"[a-z_]*family"')
	codes_before=$(grep -c '"kind":"code"' "$T/dump7")
	codes_after=$(grep -c '"kind":"code"' "$T/out")
	if [ "$rc_repair" -eq 0 ] && [ "$rc" -eq 0 ] && [ -z "$added" ] && [ "$codes_after" -lt "$codes_before" ]; then
		ok "a lost code_take in a snapshot drops its code_put too: no code comes back live"
	else
		not_ok "a lost code_take in a snapshot drops its code_put too: no code comes back live" \
			"repair exit $rc_repair, dump exit $rc, codes $codes_before -> $codes_after" "$added"
	fi
else
	not_ok "a lost code_take in a snapshot drops its code_put too" "no code_take record found in $G"
fi

# ---- re-assertion: a spend logged after the damage still holds ----
H=$T/reassert
run init "$H"
"$FILL" "$H" >/dev/null 2>&1 || not_ok "fill $H"
"$FILL" "$H" --spend >/dev/null 2>&1 || not_ok "fill --spend $H"
code_key() { python3 -c 'import base64, hashlib, sys
print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$1"; }
k3=$(code_key code-secret-a-3)
k4=$(code_key code-secret-a-4)
state_of() { python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("key") == sys.argv[2]:
        if "consumed" in e:
            print("consumed" if e["consumed"] else "unconsumed")
        else:
            print(e.get("state", "present"))
        break
else:
    print("absent")' "$1" "$2"; }
k_r2=$(code_key refresh-secret-a-2)
k_r3=$(code_key refresh-secret-a-3)
k_child=$(code_key refresh-secret-a-child-2)
run dump "$H"
if [ "$(state_of "$T/out" "$k3")" = finalized ] && [ "$(state_of "$T/out" "$k4")" = taken ] &&
	[ "$(state_of "$T/out" "$k_r2")" = consumed ] && [ "$(state_of "$T/out" "$k_r3")" = consumed ] &&
	[ "$(state_of "$T/out" "$k_child")" = unconsumed ]; then
	ok "setup: codes 3, 4 and refresh tokens 2 (rotated), 3 spent by a later run"
else
	not_ok "setup: codes 3, 4 and refresh tokens 2 (rotated), 3 spent by a later run"
fi
# Damage the first nonce_issue (type 11) of the first run's segment: the
# codes and refresh tokens before it stay, and the later run's spends,
# in the segments after the damage, are dropped.
seg=$(ls -S "$H"/log-* | head -n1)
at=$(python3 -c 'import sys
b = open(sys.argv[1], "rb").read(); o = 64
while o + 32 <= len(b):
    n = int.from_bytes(b[o + 8:o + 12], "little")
    if b[o + 12] == 11:
        print(o); break
    o += 32 + n + (8 - n % 8) % 8' "$seg")
flip "$seg" $((at + 30))
cp -a "$H" "$T/reassert-trunc"
run repair --yes "$H"
rc_repair=$rc
grep -q "repaired (1 fix)" "$T/out"
one_fix=$?
run dump "$H"
s3=$(state_of "$T/out" "$k3")
s4=$(state_of "$T/out" "$k4")
sr2=$(state_of "$T/out" "$k_r2")
sr3=$(state_of "$T/out" "$k_r3")
sc=$(state_of "$T/out" "$k_child")
if [ "$rc_repair" -eq 0 ] && [ "$one_fix" -eq 0 ] && [ "$rc" -eq 0 ] && [ "$s3" = finalized ] &&
	[ "$s4" = taken ] && [ "$sr2" = consumed ] && [ "$sr3" = consumed ] && [ "$sc" = absent ] &&
	[ "$(state_of "$T/out" "jkt|https://api.example/|jti-a-spend")" = present ]; then
	ok "after repair (one fix) the dropped spends still hold: take, finalize, consume, rotation's parent, replay"
else
	not_ok "after repair (one fix) the dropped spends still hold: take, finalize, consume, rotation's parent, replay" \
		"repair exit $rc_repair (one fix: $one_fix), dump exit $rc, codes 3 $s3 4 $s4, refresh 2 $sr2 3 $sr3 child $sc"
fi
run verify "$H"
expect_rc 0 "verify after a repair with re-assertion exits 0"
run repair --yes --truncate-only "$T/reassert-trunc"
rc_repair=$rc
grep -q "dropped code_take of \"$k4\"" "$T/out"
listed=$?
run dump "$T/reassert-trunc"
if [ "$rc_repair" -eq 0 ] && [ "$listed" -eq 0 ] && [ "$(state_of "$T/out" "$k4")" = live ]; then
	ok "with --truncate-only the take is gone (code 4 live again) and the report names its key"
else
	not_ok "with --truncate-only the take is gone (code 4 live again) and the report names its key" \
		"repair exit $rc_repair, listed $listed, code 4 $(state_of "$T/out" "$k4")"
fi

# ---- re-assertion in a snapshot: replay entries and revoked families ----
# A snapshot whose first record is not one of those, holding a replay
# record or a family image after it: damage its first record.  Which shard
# holds what follows the store's random hash seed, so a store where no
# snapshot has that shape is filled again (a new directory, a new seed).
target=
for attempt in 1 2 3 4 5 6 7 8; do
	S=$T/snapreassert$attempt
	run init "$S"
	"$FILL" "$S" --checkpoint >/dev/null 2>&1 || not_ok "fill --checkpoint $S"
	for f in "$S"/snap-*; do
		if python3 -c 'import sys
b = open(sys.argv[1], "rb").read(); o = 64; types = []
while o + 32 <= len(b):
    n = int.from_bytes(b[o + 8:o + 12], "little"); types.append(b[o + 12])
    o += 32 + n + (8 - n % 8) % 8
sys.exit(0 if types and types[0] not in (13, 14, 15) and 13 in types[1:] else 1)' "$f"; then
			target=$f
			break
		fi
	done
	[ -n "$target" ] && break
done
run dump "$S"
cp "$T/out" "$T/dump8"
if [ -n "$target" ]; then
	flip "$target" 90
	run repair --yes "$S"
	rc_repair=$rc
	run dump "$S"
	if [ "$rc_repair" -eq 0 ] && [ "$rc" -eq 0 ] &&
		[ "$(grep '"kind":"replay"' "$T/dump8")" = "$(grep '"kind":"replay"' "$T/out")" ] &&
		python3 -c 'import json, sys
# Revoked families (token lines carry "revoked" too, from their family;
# a token in the cut part may go, the mark of its family may not).
fam = ("refresh_family", "access_family")
rev = lambda f: {json.loads(l)["key"] for l in open(f)
                 if json.loads(l)["kind"] in fam and json.loads(l).get("revoked") is True}
sys.exit(0 if rev(sys.argv[1]) <= rev(sys.argv[2]) else 1)' "$T/dump8" "$T/out"; then
		ok "a snapshot cut at its first record keeps its replay entries and revoked families (re-asserted)"
	else
		not_ok "a snapshot cut at its first record keeps its replay entries and revoked families (re-asserted)" \
			"repair exit $rc_repair, dump exit $rc"
	fi
else
	not_ok "a snapshot cut at its first record keeps its replay entries and revoked families" "no suitable snapshot in $S"
fi

# ---- a file the tool may not read: verify names the call and the file ----
U=$T/unreadable
"$FILL" "$U" >/dev/null 2>&1
seg=$(cd "$U" && ls log-* 2>/dev/null | head -n1)
if [ -z "$seg" ]; then
	not_ok "verify names the file it may not read" "no log segment in $U"
else
	if [ "$(id -u)" -eq 0 ]; then
		# Root reads any file: nobody owns the rest; the segment stays
		# root's, and the tool runs as nobody.  A copy of it in $T (the
		# build tree may lie where nobody cannot go; the tool links the
		# library statically), started through python3, which every
		# run of the suite has (setpriv is not on every system).
		chmod 0711 "$T"
		cp "$ONCESTORE" "$T/oncestore-as-nobody"
		chmod 0755 "$T/oncestore-as-nobody"
		chown -R 65534:65534 "$U"
		chown 0:0 "$U/$seg"
		chmod 0600 "$U/$seg"
		python3 -c 'import os, sys
os.setgroups([]); os.setgid(65534); os.setuid(65534)
os.execv(sys.argv[1], sys.argv[1:])' "$T/oncestore-as-nobody" verify "$U" >"$T/out" 2>"$T/err"
		rc=$?
	else
		chmod 0000 "$U/$seg"
		run verify "$U"
	fi
	if [ "$rc" -eq 1 ] && grep -q "could not read the files: open $seg at offset 0: Permission denied" "$T/err"; then
		ok "verify names the file it may not read"
	else
		not_ok "verify names the file it may not read" "exit status $rc"
	fi
	chmod 0600 "$U/$seg"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
