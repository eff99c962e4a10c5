"""The one Markdown table writer, shared by the benchmark, the recipe study and ``mt2 perf``."""
from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | Sequence[str] = "left-first") -> list[str]:
    """Lines of a GitHub Markdown table.

    ``align``: ``"left-first"`` (first column left, the others right: names then numbers),
    ``"left"``, or one of ``"l"``/``"r"`` per column. Cells are formatted with ``str``; a row
    whose length differs from the header's is an error (it would shift every later column).
    """
    if isinstance(align, str):
        if align == "left-first":
            align = ["l"] + ["r"] * (len(header) - 1)
        elif align == "left":
            align = ["l"] * len(header)
        else:
            raise ValueError(f"align={align!r}: use 'left-first', 'left' or one of 'l'/'r' per column")
    if len(align) != len(header):
        raise ValueError(f"{len(align)} alignments for {len(header)} columns")
    rule = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    for number, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {number} has {len(row)} cells for {len(header)} columns: {list(row)}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return lines


def interval_cell(values: Sequence[float] | None, missing: str = "–") -> str:
    """``"value [low, high]"`` to three decimals for ``[value, low, high]``; ``missing`` for None."""
    if values is None:
        return missing
    value, low, high = values
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"
