"""The paper's claims, decided from paired bootstrap intervals of differences.

A claim compares two **rows** of a run, side A and side B (:data:`CLAIMS`: one line per
claim, so a new system's claim is one more line). A side names a system by its label (or,
when no system has that label, by kind and class-token roles, so that a model loaded
from a folder still counts) and a readout; ``None`` is the system's own embedding: the
average of both class tokens for MT2, the single token of a one-token variant, ``default``
for an external model, the frame tokens for frame-level tasks, the layer the run read
last.

On every ``(task, test set)`` where both rows were measured on the same examples, the
difference of the headline metric A - B gets a paired bootstrap interval (the same
resamples for both rows, :func:`mt2.evaluation.stats.paired_difference`) and a verdict:
**held** (interval above 0), **reversed** (below 0) or **undecided** (contains 0). Point
values never decide. A claim's status counts its verdicts on the datasets' own test sets
(cross-font test sets are listed, not counted): **held** when held on more than half of
them, **not held** when reversed on more than half, else **undecided**; **not tested**
when a side was not measured.

**Anchors** are rows of the same kind that are no claim of the paper: they say where MT2
stands against a model trained on real music (musicnn, :mod:`mt2.bench.musicnn`; its side
is named by its exact ``--encoder`` label), and their text says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from mt2.evaluation.stats import HELD, REVERSED, paired_difference, verdict

BASELINE = "DSP baseline"
MT2_ROLES = ("equivariant", "contrastive")


@dataclass(frozen=True)
class Side:
    """A row of the run: a system (by label, else kind and roles) and a readout (None: its own embedding)."""

    label: str
    kind: str | None = None
    roles: tuple[str, ...] | None = None
    readout: str | None = None

    def find(self, systems: list[dict]) -> dict | None:
        """The measured system this side names, or None."""
        ok = [s for s in systems if s["status"] == "ok"]
        exact = next((s for s in ok if s["label"] == self.label), None)
        if exact is not None or self.kind is None:
            return exact
        if self.kind == "external":
            return next((s for s in ok if s["kind"] == "external" and self.label in s["label"].lower()), None)
        return next((s for s in ok if s["kind"] == self.kind and tuple(s["roles"]) == self.roles), None)


MT2 = Side("mt2", "pretrained", MT2_ROLES)


@dataclass(frozen=True)
class Claim:
    """``a`` beats ``b`` on the tasks of ``levels`` (clip, frame)."""

    text: str
    a: Side
    b: Side
    levels: tuple[str, ...] = ("clip", "frame")


#: The paper's claims, two sanity checks and the musicnn anchors, in report order.
CLAIMS = (
    Claim("MT2 beats its equivariant-only variant", MT2, Side("equivariant", "pretrained", ("equivariant",))),
    Claim("MT2 beats its contrastive-only variant", MT2, Side("contrastive", "pretrained", ("contrastive",))),
    Claim("averaging MT2's two class tokens beats token 0 (equivariant) alone",
          Side("mt2", "pretrained", MT2_ROLES, "average"), Side("mt2", "pretrained", MT2_ROLES, "equivariant"), ("clip",)),
    Claim("averaging MT2's two class tokens beats token 1 (contrastive) alone",
          Side("mt2", "pretrained", MT2_ROLES, "average"), Side("mt2", "pretrained", MT2_ROLES, "contrastive"), ("clip",)),
    Claim("concatenating MT2's two class tokens beats token 0 (equivariant) alone",
          Side("mt2", "pretrained", MT2_ROLES, "concat"), Side("mt2", "pretrained", MT2_ROLES, "equivariant"), ("clip",)),
    Claim("concatenating MT2's two class tokens beats token 1 (contrastive) alone",
          Side("mt2", "pretrained", MT2_ROLES, "concat"), Side("mt2", "pretrained", MT2_ROLES, "contrastive"), ("clip",)),
    Claim("MT2 read as its concatenated tokens beats its equivariant-only variant",
          Side("mt2", "pretrained", MT2_ROLES, "concat"), Side("equivariant", "pretrained", ("equivariant",)), ("clip",)),
    Claim("MT2 read as its concatenated tokens beats its contrastive-only variant",
          Side("mt2", "pretrained", MT2_ROLES, "concat"), Side("contrastive", "pretrained", ("contrastive",)), ("clip",)),
    # the masked variant's class token is read by no loss: its own embedding is the mean of its frame tokens
    Claim("MT2 beats the MERT-style masked variant", MT2, Side("masked", "pretrained", ("masked",), readout="frames")),
    Claim("MT2 beats MERT (a larger model)", MT2, Side("mert", "external")),
    Claim("training beats random weights (sanity check)", MT2, Side("random:mt2", "random", MT2_ROLES)),
    Claim("MT2 beats the classical DSP baselines (sanity check)", MT2, Side(BASELINE)),
    Claim("the paper-sized MT2 (mt2-tiny, 5.9 M parameters) beats the shipped small one (mt2, 0.47 M)",
          Side("mt2-tiny"), MT2),
    *(Claim(f"anchor, not a paper claim: MT2 vs musicnn {name} (pooled features; a tagger trained on real music)",
            MT2, Side(f"mt2.bench.musicnn:load_{name.lower()}")) for name in ("MSD", "MTT")),
)


def _row(side: Side, system: dict, level: str, layer: int) -> tuple:
    """The (system, readout, layer) row a side reads on a task of ``level``."""
    if system["kind"] == "baseline":
        return None
    if system["kind"] == "external":
        return (system["label"], "default", None)
    if side.readout is not None:
        return (system["label"], side.readout, layer)
    if level == "frame":
        return (system["label"], "frames", layer)
    roles = tuple(system["roles"])
    return (system["label"], roles[0] if len(roles) == 1 else "average", layer)


def assess_claims(results: dict, statistics: dict) -> list[dict]:
    """Every claim of :data:`CLAIMS` on this run (module docstring).

    ``statistics`` maps ``(task, test set, row)`` to ``(example paths, {metric: Statistic},
    resample counts)`` (:func:`mt2.bench.runner.summarise`). Returns dicts with ``claim``,
    ``a``, ``b``, ``status``, ``detail`` (a sentence) and ``comparisons`` (per task and test
    set: the difference ``[value, low, high]`` of the headline metric and its verdict).
    """
    systems = results["systems"] + [{"label": BASELINE, "kind": "baseline", "status": "ok", "roles": []}]
    layer = results["config"]["layers"][-1]
    tasks = results["tasks"]
    test_sets = list(results["datasets"])
    out = []
    for claim in CLAIMS:
        a, b = claim.a.find(systems), claim.b.find(systems)
        if a is None or b is None:
            missing = claim.a.label if a is None else claim.b.label
            out.append({"claim": claim.text, "a": claim.a.label, "b": claim.b.label, "status": "not tested",
                        "detail": f"{missing} was not measured in this run.", "comparisons": []})
            continue
        comparisons = []
        for task, spec in tasks.items():
            if spec["level"] not in claim.levels:
                continue
            metric = spec["metrics"][0]
            for test_set in test_sets:
                rows = []
                for side, system in ((claim.a, a), (claim.b, b)):
                    row = _row(side, system, spec["level"], layer)
                    found = statistics.get((task, test_set, row)) if row else _baseline(statistics, task, test_set)
                    rows.append(found)
                if None in rows:
                    continue
                (paths_a, stats_a, counts), (paths_b, stats_b, _) = rows
                if paths_a != paths_b:
                    continue  # not the same examples: not paired
                difference = paired_difference(stats_a[metric], stats_b[metric], counts)
                comparisons.append({"task": task, "dataset": test_set, "metric": metric,
                                    "cross_font": results["datasets"][test_set].get("cross_font", False),
                                    "difference": difference.to_list(), "verdict": verdict(difference)})
        out.append({"claim": claim.text, "a": _describe(claim.a, a), "b": _describe(claim.b, b), **_status(comparisons),
                    "comparisons": comparisons})
    return out


def _baseline(statistics: dict, task: str, test_set: str):
    return next((value for (t, d, row), value in statistics.items() if t == task and d == test_set and row[0] == BASELINE), None)


def _describe(side: Side, system: dict) -> str:
    if system["kind"] == "baseline":
        return BASELINE
    readout = side.readout or ("default" if system["kind"] == "external" else "own embedding")
    return f"{system['label']} ({readout})"


def _status(comparisons: list[dict]) -> dict:
    counted = [c for c in comparisons if not c["cross_font"]]
    if not counted:
        return {"status": "not tested", "detail": "no task was measured for both sides on the same test examples."}
    held = [c for c in counted if c["verdict"] == HELD]
    reversed_ = [c for c in counted if c["verdict"] == REVERSED]
    n = len(counted)
    status = "held" if len(held) > n / 2 else "not held" if len(reversed_) > n / 2 else "undecided"

    several = len({c["dataset"] for c in counted}) > 1

    def names(chosen):
        return ", ".join(f"{c['task']} ({c['dataset']})" if several else c["task"] for c in chosen) or "none"

    detail = (f"held on {len(held)} of {n} tasks ({names(held)}), reversed on {len(reversed_)} ({names(reversed_)}), "
              f"undecided on {n - len(held) - len(reversed_)}.")
    return {"status": status, "detail": detail}
