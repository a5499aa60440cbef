#!/usr/bin/env python3
"""docs/architecture.md names every public header and every `cxlkv` subcommand.

Usage: check_architecture_doc.py CXLKV_BINARY SOURCE_DIR [--self-test]

The headers are the files in include/cxlkv/; the subcommands are what the binary's own --help
lists (and, one level down, each subcommand's --help: `bench wss`, `replay sweep`), so neither
list is kept by hand. A header counts as named when its file name appears as a word; a
subcommand when it appears in backquotes as `NAME`, `NAME ...` or `cxlkv NAME`.

--self-test removes the mentions of one header and one subcommand from the text and checks
that the check then reports exactly those two: the check can fail.
"""
import pathlib
import re
import subprocess
import sys


def subcommands(binary, *parents):
    """The subcommands --help lists under "Subcommands:", as "parent child" paths."""
    out = subprocess.run([binary, *parents, "--help"], capture_output=True, text=True,
                         check=True).stdout
    names, listing = [], False
    for line in out.splitlines():
        if re.match(r"^[A-Za-z ]*SUBCOMMANDS?:?$", line.strip(), re.I):
            listing = True
            continue
        if listing:
            m = re.match(r"^  (\S+)(\s|$)", line)
            if not m:
                if line.strip():
                    listing = False
                continue
            names.append(" ".join([*parents, m.group(1)]))
    return names


def headers(source_dir):
    return sorted(p.name for p in (pathlib.Path(source_dir) / "include" / "cxlkv").glob("*.h"))


def header_named(text, name):
    return re.search(r"(?<![\w/.])" + re.escape(name) + r"\b", text) is not None


def command_named(text, name):
    return re.search(r"`(cxlkv )?" + re.escape(name) + r"[` ]", text) is not None


def missing(text, header_names, command_names):
    return ([h for h in header_names if not header_named(text, h)] +
            [c for c in command_names if not command_named(text, c)])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, source_dir = sys.argv[1], sys.argv[2]
    doc = pathlib.Path(source_dir) / "docs" / "architecture.md"
    text = doc.read_text()
    hs = headers(source_dir)
    cs = subcommands(binary)
    for parent in list(cs):
        cs += subcommands(binary, parent)
    if not hs or len(cs) < 2:
        sys.exit(f"found {len(hs)} headers and {len(cs)} subcommands: the listing changed?")
    if "--self-test" in sys.argv[3:]:
        header, command = hs[0], cs[0]
        cut = re.sub(r"(?<![\w/.])" + re.escape(header) + r"\b", "", text)
        cut = re.sub(r"`(cxlkv )?" + re.escape(command) + r"(?=[` ])", "`", cut)
        found = missing(cut, hs, cs)
        if found != [header, command]:
            sys.exit(f"self-test: removing {header} and `{command}` gave missing {found}")
        print(f"self-test ok: without them the check reports {found}")
        return
    gone = missing(text, hs, cs)
    if gone:
        sys.exit(f"{doc} does not name: " + ", ".join(gone) +
                 " (every public header in include/cxlkv/ and every subcommand of `cxlkv --help`)")
    print(f"{doc.name} names all {len(hs)} public headers and {len(cs)} subcommands: "
          + ", ".join(cs))


if __name__ == "__main__":
    main()
