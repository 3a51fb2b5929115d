#!/usr/bin/env python3
"""update_section.py FILE SECTION_FILE: replaces (or appends) the '## …' section of FILE whose heading equals the
first line of SECTION_FILE; other sections are kept. Each benchmark script owns one section of docs/benchmarks.md."""
import pathlib, sys

target, section_file = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
section = section_file.read_text(encoding="utf-8").rstrip("\n") + "\n"
heading = section.splitlines()[0].strip()
text = target.read_text(encoding="utf-8") if target.exists() else "# Benchmarks\n\nFigures measured by the benchmark scripts (`make bench`); each section names its machine and date.\n"
lines = text.splitlines(keepends=True)
out, i, replaced = [], 0, False
while i < len(lines):
    if lines[i].strip() == heading:
        j = i + 1
        while j < len(lines) and not lines[j].startswith("## "):
            j += 1
        out.append(section + "\n")
        replaced = True
        i = j
        continue
    out.append(lines[i])
    i += 1
if not replaced:
    if out and not out[-1].endswith("\n\n"):
        out.append("\n")
    out.append(section)
target.write_text("".join(out).rstrip("\n") + "\n", encoding="utf-8")
