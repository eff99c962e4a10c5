"""Writing a run's results: ``results.json``, ``results.md`` and PNG plots.

A **row** is what was measured: ``(system, readout, layer)`` for probes and zero-shot
estimates, ``("DSP baseline", method, None)`` for the baselines (one method per task). A
**column** is a ``(task, test set)`` pair (a cross-font test set is a column of its own).
results.md has one table per task family with every metric and its bootstrap 95 %
interval (best point value in bold), a summary table of every row's headline metric with
the spread over probe seeds and the mean rank, and the paper's claims, each decided per
task from the paired interval of a difference (:mod:`mt2.bench.claims`). scores.png draws
the headline metrics with their intervals as error bars.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from mt2.bench.claims import BASELINE
from mt2.tables import markdown_table


# ----------------------------------------------------------------------------- tables


def _row(entry: dict) -> tuple:
    return (entry["system"], "" if entry["kind"] == "baseline" else entry["readout"], entry["layer"])


def _columns(results: dict) -> list[tuple[str, str]]:
    """``(task, dataset)`` pairs with results, in task order."""
    present = {(e["task"], e["dataset"]) for e in results["results"]}
    return [(task, dataset) for task in results["tasks"] for dataset in results["datasets"] if (task, dataset) in present]


def _metric_table(results: dict) -> dict[tuple, dict[tuple, dict]]:
    """``{row: {column: metrics}}``."""
    table: dict = defaultdict(dict)
    for entry in results["results"]:
        table[_row(entry)][(entry["task"], entry["dataset"])] = entry["metrics"]
    return table


def headline_scores(results: dict) -> dict[tuple, dict[tuple, float]]:
    """``{row: {column: headline metric}}`` (NaN values left out)."""
    out: dict = defaultdict(dict)
    for row, cells in _metric_table(results).items():
        for (task, dataset), metrics in cells.items():
            value = metrics[results["tasks"][task]["metrics"][0]]
            if not math.isnan(value):
                out[row][(task, dataset)] = value
    return out


def mean_ranks(scores: dict[tuple, dict[tuple, float]]) -> dict[tuple, tuple[float, int]]:
    """``{row: (mean rank, columns ranked)}``: in each column rows are ranked from 1 (best),
    ties sharing the mean of their ranks; a row's mean is over the columns where it has a score."""
    ranks: dict = defaultdict(list)
    for column in {c for cells in scores.values() for c in cells}:
        rows = [row for row in scores if column in scores[row]]
        for row, rank in zip(rows, rankdata([-scores[row][column] for row in rows], method="average")):
            ranks[row].append(float(rank))
    return {row: (float(np.mean(r)), len(r)) for row, r in ranks.items()}


def _row_order(rows, results: dict) -> list[tuple]:
    """Systems in run order (baseline last), then readouts in request order, then layers."""
    systems = [s["label"] for s in results["systems"]] + [BASELINE]
    readouts = list(results["config"]["readouts"]) + ["default", ""]
    layer_order = list(results["config"]["layers"])
    return sorted(rows, key=lambda r: (systems.index(r[0]), readouts.index(r[1]) if r[1] in readouts else len(readouts),
                                       layer_order.index(r[2]) if r[2] in layer_order else -1))


def _row_label(row: tuple, several_layers: bool) -> str:
    system, readout, layer = row
    parts = [system] + ([readout] if readout else []) + ([f"L{layer}"] if several_layers and layer is not None else [])
    return " · ".join(parts)


def _bold_best(values: list[float | None]) -> list[str]:
    """Formatted values, the best (highest) in bold unless all are equal; ``–`` where absent."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    best = max(present) if len(set(present)) > 1 else None
    return ["–" if v is None else f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in values]


def _intervals(results: dict) -> dict[tuple, dict[tuple, dict]]:
    """``{row: {column: {metric: [low, high]}}}``."""
    table: dict = defaultdict(dict)
    for entry in results["results"]:
        table[_row(entry)][(entry["task"], entry["dataset"])] = entry.get("interval", {})
    return table


def _with_interval(cell: str, bounds) -> str:
    if cell == "–" or not bounds or any(b is None or math.isnan(b) for b in bounds):
        return cell
    return f"{cell} [{bounds[0]:.2f}, {bounds[1]:.2f}]"


def _spread(results: dict) -> dict[tuple, dict[tuple, float]]:
    """``{row: {column: standard deviation of the headline metric over probe seeds}}`` (seeded rows only)."""
    out: dict = defaultdict(dict)
    for entry in results["results"]:
        value = (entry.get("spread") or {}).get(results["tasks"][entry["task"]]["metrics"][0])
        if value is not None:
            out[_row(entry)][(entry["task"], entry["dataset"])] = value
    return out


def claims_section(results: dict) -> list[str]:
    """Markdown lines: each claim's status, then its paired differences per task and test set."""
    tests = [e["counts"]["test"] for e in results["results"] if e["counts"].get("test")]
    size = f"test sets of {min(tests)} to {max(tests)} clips" if tests else "no test clips"
    lines = [f"Each claim compares two rows on the same test clips: the difference of the headline metric (A - B) with "
             f"its paired bootstrap 95 % interval ({size}; {results['protocol']['intervals']}). Per task: **held** when the "
             "interval lies above 0, **reversed** below 0, **undecided** when it contains 0; a claim is held when held on "
             "more than half of its tasks, not held when reversed on more than half, else undecided (cross-font test sets "
             "are listed, not counted). Point values decide nothing.", ""]
    for i, claim in enumerate(results["claims"], 1):
        lines += [f"{i}. *{claim['claim']}* (A: {claim['a']}; B: {claim['b']}): **{claim['status']}**: {claim['detail']}", ""]
        if claim["comparisons"]:
            rows = [[c["task"], c["dataset"], c["metric"], f"{c['difference'][0]:+.3f}",
                     f"[{c['difference'][1]:+.3f}, {c['difference'][2]:+.3f}]", c["verdict"]] for c in claim["comparisons"]]
            lines += markdown_table(["task", "test set", "metric", "A - B", "95 % interval", "verdict"], rows,
                                    ["l", "l", "l", "r", "r", "l"]) + [""]
    return lines


# ----------------------------------------------------------------------------- markdown


def reproduce(results: dict) -> str:
    """The commands that regenerate this run (the corpus render, when the data is a rendered corpus, then mt2 bench)."""
    config = results["config"]
    corpus = next((info["corpus"] for info in results["datasets"].values() if info.get("corpus")), None)
    models = " ".join(config["models"]) or "''"
    if config["data"] == "corpus":  # rendered by mt2 bench itself
        render, data = "", f"corpus --corpus-size {config['corpus_size']} --corpus-seed {config['corpus_seed']}"
    else:
        render = f"`mt2 corpus render {config['data']} --size {corpus['size']} --seed {corpus['seed']}` then " if corpus else ""
        data = config["data"]
    real = (f" --real {config['real']}" + (" --real-only" if config.get("real_only") else "")) if config.get("real") else ""
    extra = "".join(f" --encoder {spec}" for spec in config.get("encoders", []))
    extra += f" --key-estimators {' '.join(config['key_estimators'])}" if config.get("key_estimators") else ""
    return (f"{render}`mt2 bench --data {data} --out {config['out']} --models {models} --seeds "
            f"{' '.join(map(str, results['seeds']['probe']))}{extra}{real}` (features cached per model and clip list).")


def render_markdown(results: dict) -> str:
    """results.md: systems, one table per family, the summary with mean ranks, the claims."""
    several_layers = len(results["config"]["layers"]) > 1
    table = _metric_table(results)
    bounds = _intervals(results)
    columns = _columns(results)
    rows = _row_order(table, results)
    one_dataset = len(results["datasets"]) == 1
    col_name = lambda t, d: t if one_dataset else f"{t} ({d})"  # noqa: E731

    lines = ["# MT2 benchmark", ""]
    config = results["config"]
    lines += [f"Reproduce: {reproduce(results)}", ""]
    lines += [f"Data: `{config['data']}`; layers {config['layers']}; probe seed {results['seeds']['probe']}; "
              f"mt2 {results['versions']['mt2']}, torch {results['versions']['torch']}, mir_eval {results['versions']['mir_eval']}; "
              f"{results['timing_s']['total']:.0f} s.", ""]
    lines += [f"Probe seeds {results['seeds']['probe']} (metric: their mean; ± their standard deviation); "
              f"intervals: {results['protocol']['intervals']}.", ""]
    test_sets = [f"{name}: " + ", ".join(f"{t} {c.get('test', 0)}" for t, c in info["tasks"].items())
                 + (f" (cross-font: probes trained on {info['trained_on']})" if info.get("cross_font") else "")
                 for name, info in results["datasets"].items()]
    lines += ["Test clips per task: " + "; ".join(test_sets) + ".", ""]
    lines += ["## Systems", ""]
    system_rows = [[s["label"], s["kind"], s["status"] + (f": {s['error']}" if s["error"] else ""),
                    "–" if s["parameters"] is None else f"{s['parameters']:,}", (s["weights_hash"] or "–")[:12]]
                   for s in results["systems"]]
    lines += markdown_table(["system", "kind", "status", "parameters", "weights hash"], system_rows) + [""]
    notes = [f"- {s['label']}: {note}" for s in results["systems"] for note in s.get("notes", [])]
    lines += notes + ([""] if notes else [])

    families = list(dict.fromkeys(task["family"] for task in results["tasks"].values()))
    for family in families:
        cols = [(t, d, m) for t, d in columns if results["tasks"][t]["family"] == family for m in results["tasks"][t]["metrics"]]
        if not cols:
            continue
        body = [(row, [table[row].get((t, d), {}).get(m) for t, d, m in cols]) for row in rows]
        body = [(row, values) for row, values in body if any(v is not None for v in values)]
        formatted = list(zip(*[_bold_best([values[i] for _, values in body]) for i in range(len(cols))]))
        lines += [f"## {family.capitalize()}", ""]
        lines += markdown_table(["system"] + [f"{col_name(t, d)} {m}" for t, d, m in cols],
                                [[_row_label(row, several_layers)]
                                 + [_with_interval(cell, bounds[row].get((t, d), {}).get(m)) for cell, (t, d, m) in zip(cells, cols)]
                                 for (row, _), cells in zip(body, formatted)])
        lines.append("")

    scores = headline_scores(results)
    spread = _spread(results)
    ranks = mean_ranks(scores)
    lines += ["## Summary", "", "Headline metric per task (" + ", ".join(
        f"{t}: {results['tasks'][t]['metrics'][0]}" for t in dict.fromkeys(t for t, _ in columns)) + ") ± its standard "
        "deviation over probe seeds; mean rank over the tasks each row was measured on (1 = best; point values, "
        "for orientation only).", ""]
    summary_rows = [row for row in rows if row in ranks]
    cells = list(zip(*[_bold_best([scores[row].get(c) for row in summary_rows]) for c in columns])) if columns else []
    lines += markdown_table(
        ["system"] + [col_name(t, d) for t, d in columns] + ["mean rank"],
        [[_row_label(row, several_layers)]
         + [cell if c not in spread[row] else f"{cell} ±{spread[row][c]:.3f}" for cell, c in zip(cell_row, columns)]
         + [f"{ranks[row][0]:.2f} ({ranks[row][1]})"]
         for row, cell_row in zip(summary_rows, cells)],
    )
    lines += ["", "DSP baseline per task: " + "; ".join(f"{t}: {task['baseline']}" for t, task in results["tasks"].items()) + ".", ""]
    lines += ["## The paper's claims here", ""] + claims_section(results)
    if results["skipped"]:
        lines += ["## Skipped", ""] + [
            "- " + " / ".join(str(item[k]) for k in ("task", "dataset", "system", "readout") if k in item) + f": {item['reason']}"
            for item in results["skipped"]] + [""]
    if results["failed_files"]:
        lines += ["## Unreadable files (left out)", ""] + [f"- `{path}`" for path in results["failed_files"]] + [""]
    if results.get("real"):
        from mt2.bench.real_report import real_markdown

        lines += real_markdown(results["real"])
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

#: Panels per row of a plot (one panel per column of the summary table).
PANELS_PER_ROW = 4


def _short(label: str, width: int = 36) -> str:
    """A plot label cut to its last ``width`` characters (model paths can be long)."""
    return label if len(label) <= width else "…" + label[-(width - 1):]


def _panels(count: int, panel_height: float):
    """A figure with ``count`` panels on a grid of up to :data:`PANELS_PER_ROW` columns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(1, min(PANELS_PER_ROW, count))
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(4.6 * columns, panel_height * rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(count)]


def plot_scores(results: dict, path: Path) -> Path:
    """Headline metric of every row (at the last layer) per task, with its bootstrap 95 %
    interval as an error bar: one bar chart per column."""
    scores = headline_scores(results)
    bounds = _intervals(results)
    layer = results["config"]["layers"][-1]
    rows = [row for row in _row_order(scores, results) if row[2] in (layer, None)]
    columns = _columns(results)
    figure, axes = _panels(len(columns), 0.28 * len(rows) + 1.2)
    for axis, column in zip(axes, columns):
        shown = [row for row in rows if column in scores[row]]
        values = np.array([scores[row][column] for row in shown])
        metric = results["tasks"][column[0]]["metrics"][0]
        limits = np.array([bounds[row].get(column, {}).get(metric) or [v, v] for row, v in zip(shown, values)], np.float64)
        limits = np.where(np.isnan(limits), values[:, None], limits)
        errors = np.clip(np.stack([values - limits[:, 0], limits[:, 1] - values]), 0, None)
        bars = axis.barh(range(len(shown)), values, xerr=errors, error_kw={"elinewidth": 0.8, "capsize": 2},
                         color=["tab:gray" if row[0] == BASELINE else "tab:blue" for row in shown])
        axis.bar_label(bars, fmt="%.2f", fontsize=6, padding=4)
        axis.set_yticks(range(len(shown)), [_short(_row_label(row, False)) for row in shown])
        axis.invert_yaxis()
        axis.set_xlim(0, 1.1)
        axis.set_title(f"{column[0]} ({column[1]}): {results['tasks'][column[0]]['metrics'][0]}", fontsize=9)
        axis.tick_params(labelsize=7)
    figure.savefig(path, dpi=110)
    return path


def plot_layers(results: dict, path: Path) -> Path:
    """Headline metric against layer for every probed (system, readout), one panel per
    column; the DSP baseline as a dashed line."""
    scores = headline_scores(results)
    layers = results["config"]["layers"]
    columns = _columns(results)
    curves = list(dict.fromkeys((row[0], row[1]) for row in _row_order(scores, results) if row[2] is not None))
    figure, axes = _panels(len(columns), 3.0)
    for axis, column in zip(axes, columns):
        for system, readout in curves:
            points = [(j, scores[(system, readout, layer)][column]) for j, layer in enumerate(layers)
                      if column in scores.get((system, readout, layer), {})]
            if points:
                axis.plot(*zip(*points), marker="o", label=_short(f"{system} · {readout}"))
        baseline = scores.get((BASELINE, "", None), {}).get(column)
        if baseline is not None:
            axis.axhline(baseline, color="black", linestyle="--", label=BASELINE)
        axis.set_xticks(range(len(layers)), [str(layer) for layer in layers])
        axis.set_ylim(0, 1)
        axis.set_xlabel("layer")
        axis.set_title(f"{column[0]} ({column[1]}): {results['tasks'][column[0]]['metrics'][0]}", fontsize=9)
    handles = {label: handle for axis in axes for handle, label in zip(*axis.get_legend_handles_labels())}
    if handles:
        figure.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=3, fontsize=7)
    figure.savefig(path, dpi=110)
    return path


def write_report(results: dict, out: str | Path) -> dict[str, Path]:
    """Write results.json, results.md, scores.png and (with several layers) layers.png into
    ``out``. Returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    paths["json"].write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
    if _columns(results):
        paths["scores"] = plot_scores(results, out / "scores.png")
        if len(results["config"]["layers"]) > 1:
            paths["layers"] = plot_layers(results, out / "layers.png")
    paths["markdown"].write_text(render_markdown(results))
    return paths


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
