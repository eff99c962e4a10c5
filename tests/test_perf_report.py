"""The ``mt2 perf`` page (:mod:`mt2.perf.report`), rendered from the stored results of docs/perf."""
from __future__ import annotations

import json
from pathlib import Path

from mt2.perf.report import render, write_report

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "perf" / "perf.json"


def _tables(text: str) -> list[list[str]]:
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_every_table_of_the_page_is_well_formed():
    results = json.loads(RESULTS.read_text())
    tables = _tables(render(results, "perf.png"))
    assert len(tables) >= 8  # targets, embed, cqt (2), memory, training (2), trials (2)
    for table in tables:
        columns = table[0].count("|")
        assert all(line.count("|") == columns for line in table), table[0]
        assert set(table[1]) <= set("|-:"), table[1]
    embed = next(t for t in tables if t[0].startswith("| model | what |"))
    assert len(embed) == 2 + len(results["sections"]["embed"]["result"]["rows"])
    assert embed[1].endswith("---:|")  # numbers right-aligned


def test_write_report_writes_page_figure_and_json(tmp_path):
    results = json.loads(RESULTS.read_text())
    write_report(results, tmp_path / "perf.md", tmp_path / "raw" / "perf.json")
    assert (tmp_path / "perf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "raw" / "perf.json").read_text()) == results
    assert "![Realtime factors and long-file memory](perf.png)" in (tmp_path / "perf.md").read_text()


def _lever_row(name, seconds, drop_in=True, fpt=1):
    return {"name": name, "description": f"{name} setting", "drop_in": drop_in, "frames_per_token": fpt, "step_seconds": seconds,
            "cpu_seconds": seconds, "first_step_seconds": seconds, "speedup": 10.0 / seconds, "cpu_speedup": 10.0 / seconds}


def test_the_levers_section_shows_ratios_and_the_step_target():
    results = json.loads(RESULTS.read_text())
    rows = [_lever_row("today", 10.0), _lever_row("bf16 + 4 fpt", 2.5, drop_in=False, fpt=4)]
    results["sections"]["levers"] = {
        "result": {"preset": "mt2-tiny", "batch": 32, "threads": 2, "rows": rows}, "load_before": 1.0, "load_after": 1.2, "wall_seconds": 60.0,
    }
    text = render(results, "perf.png")
    levers = next(t for t in _tables(text) if t[0].startswith("| setting |"))
    assert len(levers) == 2 + 2 and "| 4.00 |" in levers[3]
    assert "training step at batch 32 <= 3 s: mt2-tiny, today | 10.00 s | no (3.3x too slow) |" in text
    assert "mt2-tiny, bf16 + 4 fpt (changes the run) | 2.50 s | yes |" in text
