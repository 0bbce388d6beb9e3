#!/usr/bin/env python3
"""examples/check_readme.py - keeps README.md's "Using it" snippet equal to
the region of examples/quickstart.c between the lines

    /* README: begin */
    /* README: end */

(the marker lines themselves are not quoted).  The README's copy is the
first ```c block of the section "## Using it", with each leading tab of
the source written as four spaces.  Exit 0 when the two agree; 1 with a
diff when they differ, or when a marker or the block is missing.

    check_readme.py [README.md [quickstart.c]]          check (CI: suite unit)
    check_readme.py --write [README.md [quickstart.c]]  copy the region into README.md

Paths default to the ones next to this script.
"""
import difflib
import os
import re
import sys

BEGIN = "/* README: begin */"
END = "/* README: end */"
SECTION = "## Using it"


def region(source_path):
    lines = open(source_path, encoding="utf-8").read().split("\n")
    starts = [i for i, l in enumerate(lines) if l.strip() == BEGIN]
    ends = [i for i, l in enumerate(lines) if l.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0] + 1:
        sys.exit(f"{source_path}: expected one '{BEGIN}' line followed by one '{END}' line")
    out = []
    for l in lines[starts[0] + 1:ends[0]]:
        stripped = l.lstrip("\t")
        out.append("    " * (len(l) - len(stripped)) + stripped)
    return out


def readme_block(text, readme_path):
    """(first line index, end line index) of the block's contents."""
    lines = text.split("\n")
    try:
        sec = next(i for i, l in enumerate(lines) if l.rstrip() == SECTION)
    except StopIteration:
        sys.exit(f"{readme_path}: no section '{SECTION}'")
    for i in range(sec + 1, len(lines)):
        if re.match(r"^## ", lines[i]):
            break
        if lines[i].rstrip() == "```c":
            for j in range(i + 1, len(lines)):
                if lines[j].rstrip() == "```":
                    return lines, i + 1, j
            sys.exit(f"{readme_path}: the ```c block at line {i + 1} is not closed")
    sys.exit(f"{readme_path}: no ```c block in section '{SECTION}'")


def main(argv):
    write = "--write" in argv
    args = [a for a in argv if a != "--write"]
    here = os.path.dirname(os.path.abspath(__file__))
    readme_path = args[0] if len(args) > 0 else os.path.join(here, "..", "README.md")
    source_path = args[1] if len(args) > 1 else os.path.join(here, "quickstart.c")
    want = region(source_path)
    lines, first, end = readme_block(open(readme_path, encoding="utf-8").read(), readme_path)
    have = lines[first:end]
    if have == want:
        print(f"ok: {readme_path} quotes {source_path}'s README region ({len(want)} lines)")
        return 0
    if write:
        lines[first:end] = want
        with open(readme_path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        print(f"{readme_path}: snippet replaced by {source_path}'s README region")
        return 0
    sys.stdout.writelines(difflib.unified_diff(
        [l + "\n" for l in have], [l + "\n" for l in want],
        f"{readme_path} (section '{SECTION}')", f"{source_path} (README region)"))
    print(f"FAILED: README.md's snippet differs from {source_path}'s README region; "
          f"edit quickstart.c, then run examples/check_readme.py --write")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
