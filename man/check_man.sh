#!/usr/bin/env bash
# man/check_man.sh - test man_pages (suite unit): the manual pages render
# without a warning, and they have not drifted from what they describe.
#
#   check_man.sh TOOL VERSION HEADER oncestore.1 oncestore.3
#
# For each page (TAP output, one test per check):
#   - groff (Debian: groff-base) renders it with every warning on
#     (-ww) and prints nothing on stderr; the text it renders is not empty
#     and starts with the page's NAME section.  Without groff the test fails
#     and says which package to install: it never passes without rendering.
#     Where man-db is installed, `man --warnings -l` must be silent too;
#   - .TH names "oncestore VERSION" (the project's version);
# oncestore.1: every command that `TOOL --help` lists has a subsection
#   (.SS), and every --option that `TOOL --help` or `TOOL COMMAND --help`
#   mentions appears in the page;
# oncestore.3: every function HEADER declares (ONCE_API) is named.
set -u
if [ $# -ne 5 ]; then
	echo "usage: check_man.sh TOOL VERSION HEADER oncestore.1 oncestore.3" >&2
	exit 2
fi
tool=$1 version=$2 header=$3 page1=$4 page3=$5
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

if ! command -v groff >/dev/null 2>&1; then
	echo "1..1"
	echo "not ok 1 - groff not found: install the Debian package groff-base (tests/run.sh lists it among its packages)"
	exit 1
fi

render() { # page: renders, checks warnings and the NAME section
	local page=$1 name
	name=$(basename "$page")
	if groff -man -Tutf8 -ww -P-cbou "$page" >"$tmp/$name.txt" 2>"$tmp/$name.err" && [ ! -s "$tmp/$name.err" ]; then
		ok "$name: groff -man -Tutf8 -ww renders it without a warning"
	else
		not_ok "$name: groff -man -Tutf8 -ww warned or failed"
		sed 's/^/# /' "$tmp/$name.err"
	fi
	local lines
	lines=$(grep -c . "$tmp/$name.txt")
	if [ "$lines" -gt 50 ] && grep -q '^NAME' "$tmp/$name.txt" && grep -q '^SEE ALSO' "$tmp/$name.txt"; then
		ok "$name: rendered $lines lines, with NAME and SEE ALSO"
	else
		not_ok "$name: rendered text too short ($lines lines) or without NAME / SEE ALSO"
	fi
	if command -v man >/dev/null 2>&1; then
		if man --warnings -E UTF-8 -l -Tutf8 -Z "$page" >/dev/null 2>"$tmp/$name.man" && [ ! -s "$tmp/$name.man" ]; then
			ok "$name: man --warnings -l is silent"
		else
			not_ok "$name: man --warnings -l warned or failed"
			sed 's/^/# /' "$tmp/$name.man"
		fi
	fi
	if grep -q "^\.TH ONCESTORE [13] [0-9-]* \"oncestore $version\"" "$page"; then
		ok "$name: .TH names oncestore $version"
	else
		not_ok "$name: .TH does not name \"oncestore $version\" (the project's version): $(grep '^\.TH' "$page")"
	fi
}

render "$page1"
render "$page3"

# oncestore.1 against the tool.  The page's source with \- as -.
sed 's/\\-/-/g' "$page1" >"$tmp/page1.src"
"$tool" --help >"$tmp/help" 2>&1
commands=$(sed -n '/^commands:/,/^$/p' "$tmp/help" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
if [ -n "$commands" ]; then
	ok "oncestore --help lists $(echo $commands | wc -w) commands"
else
	not_ok "oncestore --help lists no commands (parse failed?)"
fi
for c in $commands; do
	if grep -q "^\.SS $c\b" "$tmp/page1.src"; then
		ok "oncestore.1 has a subsection for $c"
	else
		not_ok "oncestore.1 has no subsection (.SS $c) for the command $c"
	fi
	"$tool" "$c" --help >>"$tmp/help" 2>&1
done
for opt in $(grep -o -- '--[a-z][a-z-]*[a-z]' "$tmp/help" | sort -u); do
	if grep -q -- "$opt\b" "$tmp/page1.src"; then
		ok "oncestore.1 documents $opt"
	else
		not_ok "oncestore.1 does not mention $opt (from oncestore [COMMAND] --help)"
	fi
done

# oncestore.3 against the header.
functions=$(sed -n 's/^ONCE_API .*[ *]\(once_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
if [ "$(echo "$functions" | wc -w)" -gt 20 ]; then
	ok "oncestore.h declares $(echo "$functions" | wc -w) functions"
else
	not_ok "oncestore.h: found only $(echo "$functions" | wc -w) functions (parse failed?)"
fi
for f in $functions; do
	if grep -q "\b$f\b" "$page3"; then
		ok "oncestore.3 names $f"
	else
		not_ok "oncestore.3 does not name $f (declared in oncestore.h)"
	fi
done

echo "1..$n"
[ "$failed" -eq 0 ]
