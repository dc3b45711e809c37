#!/usr/bin/env python3
"""Extracts the README's code snippets for .ci/readme-snippets, so that CI runs each one.

Every fenced block of README.md must follow a marker line

    <!-- snippet: NAME -->                 (run by .ci/readme-snippets)
    <!-- snippet: NAME skip: WHY -->       (not run, for the reason given)

so that a new snippet cannot go unchecked: a block without a marker, a marker without a
block, or a name used twice is an error. Writes each block to OUT_DIR/NAME.LANG (`sh`,
`python`, ...) and prints one line per snippet: `NAME LANG run|skip [WHY]`.

Usage: readme_snippets.py README.md OUT_DIR
"""
import pathlib
import re
import sys

MARKER = re.compile(r"^<!-- snippet: ([a-z0-9-]+)(?: skip: (.+?))? -->$")
FENCE = re.compile(r"^```([A-Za-z0-9_-]*)\s*$")


def snippets(text):
    """(name, lang, skip reason or None, code) for each marked block; raises on a bad README."""
    lines = text.splitlines()
    found, names, i = [], set(), 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if line.strip().startswith("<!-- snippet") and not marker:
            raise ValueError(f"README.md:{i + 1}: malformed snippet marker: {line!r}")
        if fence and not marker:
            raise ValueError(
                f"README.md:{i + 1}: a code block without a `<!-- snippet: NAME -->` line "
                "before it (CI runs every README snippet; mark it, or `skip: WHY`)")
        if not marker:
            i += 1
            continue
        name, skip = marker.group(1), marker.group(2)
        if name in names:
            raise ValueError(f"README.md:{i + 1}: snippet {name!r} twice")
        names.add(name)
        opening = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not opening or not opening.group(1):
            raise ValueError(
                f"README.md:{i + 2}: snippet {name!r}: the next line must open a fenced "
                "block with its language (```sh, ```python)")
        end = i + 2
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{i + 2}: snippet {name!r} is never closed")
        found.append((name, opening.group(1), skip, "\n".join(lines[i + 2:end]) + "\n"))
        i = end + 1
    return found


def main():
    readme, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    try:
        found = snippets(readme.read_text(encoding="utf-8"))
    except ValueError as e:
        sys.exit(str(e))
    out.mkdir(parents=True, exist_ok=True)
    for name, lang, skip, code in found:
        (out / f"{name}.{lang}").write_text(code, encoding="utf-8")
        print(name, lang, f"skip {skip}" if skip else "run")


if __name__ == "__main__":
    main()
