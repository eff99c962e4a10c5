"""Writing a run's results: ``results.json``, ``results.md`` and PNG plots.

A **row** is what was measured: ``(system, readout, layer)`` for probes and zero-shot
estimates, ``("DSP baseline", method, None)`` for the baselines (one method per task). A
**column** is a ``(task, dataset)`` pair. results.md has one table per task family with
every metric (best in bold), a summary table of every row's headline metric per column
with its mean rank, and a paragraph on the paper's claims written from the numbers by
:func:`assess_claims`.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

BASELINE = "DSP baseline"
MT2_ROLES = ("equivariant", "contrastive")


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


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _bold_best(values: list[float | None]) -> list[str]:
    """Formatted values, the best (highest) in bold unless all are equal; ``–`` where absent."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    best = max(present) if len(set(present)) > 1 else None
    return ["–" if v is None else f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in values]


# ----------------------------------------------------------------------------- claims


def _first(systems: list[dict], kind: str, roles: tuple[str, ...]) -> dict | None:
    return next((s for s in systems if s["status"] == "ok" and s["kind"] == kind and tuple(s["roles"]) == roles), None)


def assess_claims(results: dict) -> list[dict]:
    """The paper's three claims, and two sanity checks, from the measured headline metrics.

    MT2 is the first pretrained two-token model of the run, read through its default
    embedding (``average`` for clip-level tasks, ``frames`` for frame-level ones) at the
    last requested layer; a single-token variant (or the random-weight network) the same
    way through its own token; an external model through its ``default`` readout. A claim
    **holds** when MT2 wins (strictly) on more than half of the tasks where both sides
    were measured. Returns dicts with ``claim``, ``status`` (``holds``, ``does not hold``
    or ``not tested``) and ``detail`` (a sentence).
    """
    systems = results["systems"]
    scores = headline_scores(results)
    columns = _columns(results)
    level = {name: task["level"] for name, task in results["tasks"].items()}
    layer = results["config"]["layers"][-1]

    def row_view(row):
        return lambda column: scores.get(row, {}).get(column)

    def model_view(label, token):
        """A model's token for clip-level tasks, its frame tokens for frame-level ones."""
        return lambda column: scores.get((label, "frames" if level[column[0]] == "frame" else token, layer), {}).get(column)

    def versus(view, other):
        """Columns where both were measured, and those where ``view`` is strictly better."""
        both = [c for c in columns if view(c) is not None and other(c) is not None]
        return both, [c for c in both if view(c) > other(c)]

    def names(chosen):
        return ", ".join(t if len(results["datasets"]) == 1 else f"{t} ({d})" for t, d in chosen) or "none"

    def verdict(wins, total):
        return "holds" if total and len(wins) > total / 2 else "does not hold"

    def not_tested(claim, why):
        return {"claim": claim, "status": "not tested", "detail": why}

    missing = "; ".join(f"{s['label']} ({s['error']})" for s in systems if s["status"] != "ok")
    missing = f" Missing from this run: {missing}." if missing else ""
    claims_1_3 = ("MT2 beats both single-token variants", "averaging the two class tokens helps",
                  "a linear probe on MT2 beats MERT on most tasks")
    mt2 = _first(systems, "pretrained", MT2_ROLES)
    if mt2 is None:
        return [not_tested(claim, f"no pretrained two-token MT2 model was measured.{missing}") for claim in claims_1_3]
    name = mt2["label"]
    mt2_view = model_view(name, "average")
    claims = []

    variants = [_first(systems, "pretrained", (role,)) for role in MT2_ROLES]
    if None in variants:
        claims.append(not_tested(claims_1_3[0], f"a single-token variant was not measured.{missing}"))
    else:
        (e_both, e_wins), (c_both, c_wins) = [versus(mt2_view, model_view(v["label"], role)) for v, role in zip(variants, MT2_ROLES)]
        both = [c for c in c_both if c in e_both]
        wins = [c for c in both if c in c_wins and c in e_wins]
        equivariant, contrastive = (v["label"] for v in variants)
        claims.append({"claim": claims_1_3[0], "status": verdict(wins, len(both)), "detail": (
            f"{name} (average readout; frame tokens for frame-level tasks) beats {contrastive} on {len(c_wins)} of "
            f"{len(c_both)} tasks and {equivariant} on {len(e_wins)} of {len(e_both)}, both on {len(wins)} of "
            f"{len(both)} ({names(wins)}).")})

    best_token = lambda column: max(row_view((name, role, layer))(column) for role in MT2_ROLES)  # noqa: E731
    scored = [c for c in columns if level[c[0]] == "clip" and all(row_view((name, r, layer))(c) is not None for r in ("average", *MT2_ROLES))]
    if not scored:
        claims.append(not_tested(claims_1_3[1], f"{name} was not measured with the average and both token readouts."))
    else:
        wins = [c for c in scored if mt2_view(c) > best_token(c)]
        claims.append({"claim": claims_1_3[1], "status": verdict(wins, len(scored)), "detail": (
            f"the average of {name}'s two tokens beats both tokens alone on {len(wins)} of {len(scored)} "
            f"clip-level tasks ({names(wins)}).")})

    merts = [s for s in systems if s["status"] == "ok" and s["kind"] == "external" and "mert" in s["label"].lower()]
    if not merts:
        claims.append(not_tested(claims_1_3[2], "no MERT model was measured in this run (pass a MERT adapter with --encoder)."))
    for mert in merts:
        both, wins = versus(mt2_view, row_view((mert["label"], "default", None)))
        claims.append({"claim": claims_1_3[2], "status": verdict(wins, len(both)),
                       "detail": f"{name} beats {mert['label']} on {len(wins)} of {len(both)} tasks ({names(wins)})."})

    sanity = [("MT2 beats the classical baselines (sanity check)", "the DSP baseline", row_view((BASELINE, "", None)))]
    random = _first(systems, "random", MT2_ROLES)
    if random is not None:
        sanity.insert(0, ("training beats random weights (sanity check)",
                          f"the same network with random weights ({random['label']})", model_view(random["label"], "average")))
    for claim, label, other in sanity:
        both, wins = versus(mt2_view, other)
        if both:
            claims.append({"claim": claim, "status": verdict(wins, len(both)),
                           "detail": f"{name} beats {label} on {len(wins)} of {len(both)} tasks ({names(wins)})."})
    return claims


def claims_paragraph(claims: list[dict], results: dict) -> str:
    """One paragraph stating which claims hold here, from :func:`assess_claims`."""
    tests = [e["counts"]["test"] for e in results["results"] if e["counts"].get("test")]
    size = (f"test splits of {min(tests)} to {max(tests)} clips, where the standard error of an accuracy "
            f"reaches {50 / math.sqrt(min(tests)):.0f} points") if tests else "no test clips"
    parts = [f"On {', '.join(results['datasets'])} ({size}):"]
    for i, claim in enumerate(claims, 1):
        parts.append(f"({i}) *{claim['claim']}*: **{claim['status']}**: {claim['detail']}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- markdown


def render_markdown(results: dict) -> str:
    """results.md: systems, one table per family, the summary with mean ranks, the claims."""
    several_layers = len(results["config"]["layers"]) > 1
    table = _metric_table(results)
    columns = _columns(results)
    rows = _row_order(table, results)
    one_dataset = len(results["datasets"]) == 1
    col_name = lambda t, d: t if one_dataset else f"{t} ({d})"  # noqa: E731

    lines = ["# MT2 benchmark", ""]
    config = results["config"]
    lines += [f"Data: `{config['data']}`; layers {config['layers']}; probe seed {results['seeds']['probe']}; "
              f"mt2 {results['versions']['mt2']}, torch {results['versions']['torch']}, mir_eval {results['versions']['mir_eval']}; "
              f"{results['timing_s']['total']:.0f} s.", ""]
    lines += ["## Systems", ""]
    system_rows = [[s["label"], s["kind"], s["status"] + (f": {s['error']}" if s["error"] else ""),
                    "–" if s["parameters"] is None else f"{s['parameters']:,}", (s["weights_hash"] or "–")[:12]]
                   for s in results["systems"]]
    lines += _markdown_table(["system", "kind", "status", "parameters", "weights hash"], system_rows) + [""]
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
        lines += _markdown_table(["system"] + [f"{col_name(t, d)} {m}" for t, d, m in cols],
                                 [[_row_label(row, several_layers)] + list(cells) for (row, _), cells in zip(body, formatted)])
        lines.append("")

    scores = headline_scores(results)
    ranks = mean_ranks(scores)
    lines += ["## Summary", "", "Headline metric per task (" + ", ".join(
        f"{t}: {results['tasks'][t]['metrics'][0]}" for t in dict.fromkeys(t for t, _ in columns)) + "); "
        "mean rank over the tasks each row was measured on (1 = best).", ""]
    summary_rows = [row for row in rows if row in ranks]
    cells = list(zip(*[_bold_best([scores[row].get(c) for row in summary_rows]) for c in columns])) if columns else []
    lines += _markdown_table(
        ["system"] + [col_name(t, d) for t, d in columns] + ["mean rank"],
        [[_row_label(row, several_layers)] + list(cell) + [f"{ranks[row][0]:.2f} ({ranks[row][1]})"]
         for row, cell in zip(summary_rows, cells)],
    )
    lines += ["", "DSP baseline per task: " + "; ".join(f"{t}: {task['baseline']}" for t, task in results["tasks"].items()) + ".", ""]
    lines += ["## The paper's claims here", "", claims_paragraph(results["claims"], results), ""]
    if results["skipped"]:
        lines += ["## Skipped", ""] + [
            "- " + " / ".join(str(item[k]) for k in ("task", "dataset", "system", "readout") if k in item) + f": {item['reason']}"
            for item in results["skipped"]] + [""]
    if results["failed_files"]:
        lines += ["## Unreadable files (left out)", ""] + [f"- `{path}`" for path in results["failed_files"]] + [""]
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
    """Headline metric of every row (at the last layer) per task: one bar chart per column."""
    scores = headline_scores(results)
    layer = results["config"]["layers"][-1]
    rows = [row for row in _row_order(scores, results) if row[2] in (layer, None)]
    columns = _columns(results)
    figure, axes = _panels(len(columns), 0.28 * len(rows) + 1.2)
    for axis, column in zip(axes, columns):
        shown = [row for row in rows if column in scores[row]]
        bars = axis.barh(range(len(shown)), [scores[row][column] for row in shown],
                         color=["tab:gray" if row[0] == BASELINE else "tab:blue" for row in shown])
        axis.bar_label(bars, fmt="%.2f", fontsize=6, padding=2)
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
    """Fill ``results["claims"]``; write results.json, results.md, scores.png and (with
    several layers) layers.png into ``out``. Returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results["claims"] = assess_claims(results)
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
