"""Every "docs/design.md section N" in the code, docs, README, scripts and tests names a section
that ``docs/design.md`` has, and no reference points at a design file outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
#: Where references live: folders searched recursively, and single files.
SEARCHED = ("src", "docs", "scripts", "tests", "README.md", "pyproject.toml", "Makefile")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".yaml", ".yml", ".txt", ""}
SKIPPED_PARTS = ("__pycache__", ".egg-info")
#: "docs/design.md section 5", "docs/design.md sections 2-3", "docs/design.md\n  sections 2 and 6"
#: (a reference may wrap onto the next line, also inside a ``#`` comment).
REFERENCE = re.compile(r"docs/design\.md[\s#]*sections?\s+(\d+(?:\s*(?:-|,|and)\s*\d+)*)")
#: The design file outside the repository that older references named (spelled in two parts so
#: that this file does not match itself).
OUTSIDE_NAME = "DESIGN" + ".md"


def searched_files() -> list[Path]:
    files = []
    for entry in SEARCHED:
        path = ROOT / entry
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in candidates if p.suffix in TEXT_SUFFIXES and not any(s in str(p) for s in SKIPPED_PARTS)]
    return files


def sections(text: str) -> set[int]:
    """The numbered ``## N.`` headings of a Markdown text."""
    return {int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE)}


def referenced(numbers: str) -> list[int]:
    """``"2-3"`` -> [2, 3]; ``"2 and 6"`` -> [2, 6]."""
    found = []
    for part in re.split(r"\s*(?:,|and)\s*", numbers.strip()):
        low, _, high = part.partition("-")
        found += range(int(low), int(high or low) + 1)
    return found


def test_design_has_numbered_sections():
    assert sections(DESIGN.read_text()) == set(range(1, 7))


def test_every_design_reference_resolves():
    existing = sections(DESIGN.read_text())
    references, broken = 0, []
    for path in searched_files():
        text = path.read_text(errors="replace")
        for match in REFERENCE.finditer(text):
            references += 1
            line = text.count("\n", 0, match.start()) + 1
            broken += [f"{path.relative_to(ROOT)}:{line}: section {n}" for n in referenced(match.group(1)) if n not in existing]
    assert references >= 30, f"only {references} references found: has the pattern stopped matching?"
    assert not broken, f"docs/design.md has no such section: {broken}"


def test_no_reference_to_a_design_file_outside_the_repository():
    here = Path(__file__).resolve()
    stale = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in searched_files() if path.resolve() != here
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if OUTSIDE_NAME in line
    ]
    assert not stale, f"references to {OUTSIDE_NAME}, which is not in the repository (use docs/design.md section N): {stale}"


def test_reference_pattern():
    text = 'a (docs/design.md section 5) b docs/design.md sections 2-3, c docs/design.md\n    sections 2 and 6 d'
    assert [referenced(m.group(1)) for m in REFERENCE.finditer(text)] == [[5], [2, 3], [2, 6]]
