"""The ship gate (``mt2 bench --gate CANDIDATE --against SHIPPED``, issue 32): a candidate model
folder is shipped in place of a shipped model only when the rule below accepts it.

**One run.** A paired interval needs both models scored on the same test examples with the same
bootstrap resamples, and results.json keeps intervals, not per-example scores. So the gate runs one
benchmark holding the shipped model first, the candidate, and the other systems the claims name
(:func:`gate_models`), with ``--real``; the run itself computes what the gate reads:
``results["gate"]`` (:func:`gate_section`: the corpus key rows paired, and the claims decided for
the shipped set and for the candidate set) and, in the real-music section, each candidate row's
``paired`` difference to its shipped row (:mod:`mt2.bench.real`). The run writes results.json as
usual; ``mt2 bench --gate ... --from OUT/results.json`` decides again from it without rerunning.
Several candidates are gated together (``--gate A B --against mt2 equivariant``): each pair gets
the checks of 1 and 2, and the claims of 3 are decided with every candidate in place at once.

**The rule** (:func:`decide`). Every check compares candidate minus shipped by its paired 95 %
bootstrap interval (:func:`mt2.evaluation.stats.paired_difference`) and reads its verdict (held:
above 0, reversed: below 0, undecided: contains 0; point values never decide). The gate ACCEPTS
only when no check refuses:

1. **Real music** (``--real``), on the shipped model's own embedding (``average`` with two class
   tokens, the token with one; the masked variant's own embedding is its frame tokens, which these
   measures do not read): soundtrack identification accuracy, same-track retrieval top-1 among the
   test excerpts and, where the corpus holds the held-out soundtrack, among its excerpts; for a
   model with ``encoder.key``: transpositions followed and MIREX against essentia on the 30-s
   excerpts. Refuses on a reversed verdict.
2. **Corpus key task**: the MIREX weighted score of the own embedding's probe (frames for the
   masked variant) and of ``encoder.key`` (zero-shot, where the shipped model has it) on every key
   test set, cross-font ones included. Refuses on a reversed verdict.
3. **Claims** (:data:`mt2.bench.claims.CLAIMS` but the musicnn anchors and the claims that the
   shipped ``mt2`` is beaten, whose side B is MT2: a better ``mt2`` weakens them without weakening
   the paper). A claim's counts are its held ``H`` and reversed ``R`` comparisons on the datasets'
   own test sets (``n`` in all; cross-font sets listed, not counted, as in the claims table), for
   the shipped set (the run without the candidates) and the candidate set (the run with each
   candidate in its shipped model's place). A claim **gets worse**, and refuses, when
   ``R_candidate > R_shipped`` (a new reversal) or ``H_candidate - R_candidate < H_shipped -
   R_shipped`` (the net count falls), or when it was tested for the shipped set and is not for
   the candidate set. A claim tested for neither is not listed.

A measure the shipped model has and the candidate lacks refuses (the gate accepts nothing it did
not measure); so does a required measure not measured at all (no real-music section, essentia not
installed: the line says why). A measure the shipped model does not have (no ``encoder.key``, no
held-out soundtrack) is not a check.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mt2.bench.claims import CLAIMS, MT2, assess_claims
from mt2.bench.features import FRAME_READOUT, ZERO_SHOT
from mt2.evaluation.stats import HELD, REVERSED, interval, paired_difference, verdict
from mt2.tables import interval_cell

#: The claims the gate counts (module docstring, rule 3).
GATED_CLAIMS = tuple(c.text for c in CLAIMS if not c.text.startswith("anchor") and c.b != MT2)
#: The corpus task of rule 2.
KEY_TASK = "key"


def gate_pairs(candidates: Sequence[str], against: Sequence[str]) -> list[tuple[str, str]]:
    """``(candidate, shipped)`` pairs from ``--gate`` and ``--against``.

    Raises:
        ValueError: counts differ, a name repeats, or a candidate is its own shipped model.
    """
    if len(candidates) != len(against):
        raise ValueError(f"--gate {' '.join(candidates)} --against {' '.join(against)}: give one shipped model per candidate")
    names = [*candidates, *against]
    if len(set(names)) != len(names):
        raise ValueError(f"--gate {' '.join(candidates)} --against {' '.join(against)}: every candidate and shipped model once, "
                         "and a candidate under another name than its shipped model (a folder)")
    return list(zip(candidates, against))


def gate_models(models: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The run's models: the shipped ones first (the real section's first system is the first), the
    candidates, then the other ``models`` (the claims' other sides)."""
    gated = [s for _, s in pairs] + [c for c, _ in pairs]
    return gated + [m for m in models if m not in gated]


def own_readout(system: dict) -> str:
    """A system's own embedding (module docstring): ``average`` with two or more class tokens, the
    token's role with one, the frame tokens for the masked variant."""
    roles = tuple(system["roles"])
    if len(roles) > 1:
        return "average"
    return roles[0] if roles and roles[0] in system["readouts"] else FRAME_READOUT


def _system(results: dict, label: str) -> dict | None:
    return next((s for s in results["systems"] if s["label"] == label and s["status"] == "ok"), None)


def gate_section(results: dict, statistics: dict, pairs: Sequence[tuple[str, str]]) -> dict:
    """``results["gate"]``: the pairs, the corpus key rows of every pair paired (rule 2) and the
    claims of the shipped and of the candidate set (rule 3).

    ``statistics`` maps ``(task, test set, row)`` to ``(example paths, {metric: Statistic},
    resample counts)`` (:func:`mt2.bench.runner.summarise`).
    """
    layer = results["config"]["layers"][-1]
    key_rows = []
    task = results["tasks"].get(KEY_TASK)
    for candidate, shipped in pairs:
        system = _system(results, shipped)
        if task is None or system is None:
            continue
        metric = task["metrics"][0]
        for dataset, info in results["datasets"].items():
            for readout in (own_readout(system), ZERO_SHOT):
                level = None if readout == ZERO_SHOT else layer
                found_shipped = statistics.get((KEY_TASK, dataset, (shipped, readout, level)))
                if found_shipped is None:
                    continue
                paths, stats_shipped, counts = found_shipped
                row = {"candidate": candidate, "shipped": shipped, "dataset": dataset, "cross_font": info.get("cross_font", False),
                       "readout": readout, "metric": metric, "shipped_value": interval(stats_shipped[metric], counts).to_list()}
                found = statistics.get((KEY_TASK, dataset, (candidate, readout, level)))
                if found is not None and found[0] == paths:
                    difference = paired_difference(found[1][metric], stats_shipped[metric], counts)
                    row.update(candidate_value=interval(found[1][metric], counts).to_list(), difference=difference.to_list(),
                               verdict=verdict(difference))
                key_rows.append(row)
    return {"pairs": [list(p) for p in pairs], "key": key_rows,
            "claims": {"shipped": _claims_of_set(results, statistics, pairs, candidate_set=False),
                       "candidate": _claims_of_set(results, statistics, pairs, candidate_set=True)}}


def _claims_of_set(results: dict, statistics: dict, pairs, candidate_set: bool) -> list[dict]:
    """The claims of the run without the candidates (shipped set), or without the shipped models
    and each candidate relabelled as its shipped model (candidate set)."""
    rename = {c: s for c, s in pairs} if candidate_set else {}
    dropped = {s for _, s in pairs} if candidate_set else {c for c, _ in pairs}
    systems = [{**s, "label": rename.get(s["label"], s["label"])} for s in results["systems"] if s["label"] not in dropped]
    kept = {(task, dataset, (rename.get(row[0], row[0]), *row[1:])): value for (task, dataset, row), value in statistics.items()
            if row[0] not in dropped}
    return assess_claims({**results, "systems": systems}, kept)


# ----------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Check:
    """One line of the verdict: what was compared, both values, the paired difference, the verdict."""

    kind: str  # "real music", "corpus key", "claim" or "run"
    measure: str
    shipped: str
    candidate: str
    difference: str
    verdict: str
    refuses: bool

    def line(self) -> str:
        return (f"{'REFUSE' if self.refuses else 'ok':6}  {self.kind}: {self.measure} | shipped {self.shipped} | "
                f"candidate {self.candidate} | candidate - shipped {self.difference} | {self.verdict}")


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on ``pairs`` and its checks, in order."""

    pairs: list[tuple[str, str]]
    checks: list[Check]

    @property
    def accepted(self) -> bool:
        return not any(c.refuses for c in self.checks)

    def lines(self) -> list[str]:
        refused = [c for c in self.checks if c.refuses]
        names = ", ".join(f"{c} in place of {s}" for c, s in self.pairs)
        head = (f"ship gate: ACCEPTED {names} ({len(self.checks)} checks, none refuses)" if self.accepted else
                f"ship gate: REFUSED {names} ({len(refused)} of {len(self.checks)} checks refuse)")
        return [head, *(c.line() for c in self.checks)]


def _compared(kind: str, measure: str, shipped, candidate, paired: dict | None) -> Check:
    """A paired check: refused when reversed, or when the candidate lacks it (``paired`` None)."""
    if paired is None:
        return Check(kind, measure, interval_cell(shipped, "-"), "not measured", "-", "missing for the candidate", True)
    return Check(kind, measure, interval_cell(shipped, "-"), interval_cell(candidate, "-"),
                 interval_cell(paired["difference"], "-"), paired["verdict"], paired["verdict"] == REVERSED)


def _real_checks(section: dict | None, system: dict, candidate: str, shipped: str) -> list[Check]:
    """Rule 1 for one pair."""
    if section is None or "skipped" in section:
        why = "the run had no --real" if section is None else section["skipped"]
        return [Check("real music", "every real-music measure", "not measured", "not measured", "-", why, True)]
    checks = []
    own = own_readout(system)
    tables = [("identification", "soundtrack identification accuracy", "accuracy"), ("retrieval", "same-track retrieval top-1", "top1")]
    if section.get("excerpts", {}).get("by_split", {}).get("holdout"):
        tables.append(("holdout_retrieval", "same-track retrieval top-1 on the held-out soundtrack", "top1"))
    for table, name, metric in tables:
        rows = section.get(table, {})
        shipped_row, candidate_row = rows.get(f"{shipped} {own}"), rows.get(f"{candidate} {own}")
        if shipped_row is None:
            continue  # the shipped model's own embedding is not read here (the masked variant)
        paired = (candidate_row or {}).get("paired", {}).get(metric)
        checks.append(_compared("real music", f"{name} ({own})", shipped_row[metric], (candidate_row or {}).get(metric), paired))
    keys = section.get("key", {})
    if shipped in keys:  # the shipped model has encoder.key
        candidate_row = keys.get(candidate) or {}
        checks.append(_compared("real music", "transpositions followed (encoder.key)", keys[shipped]["followed"],
                                candidate_row.get("followed"), candidate_row.get("paired", {}).get("followed")))
        reference = section.get("reference") or {}
        if "systems" not in reference:
            why = reference.get("skipped", "the section has no key reference")
            checks.append(Check("real music", "MIREX against essentia (encoder.key, 30-s excerpts)", "not measured", "not measured",
                                "-", f"not measured: {why}", True))
        else:
            candidate_row = reference["systems"].get(candidate) or {}
            checks.append(_compared("real music", "MIREX against essentia (encoder.key, 30-s excerpts)",
                                    reference["systems"][shipped]["mirex"], candidate_row.get("mirex"),
                                    candidate_row.get("paired", {}).get("mirex")))
    return checks


def _key_checks(rows: list[dict], candidate: str, shipped: str) -> list[Check]:
    """Rule 2 for one pair."""
    checks = [_compared("corpus key", f"{row['metric']} on {row['dataset']} ({row['readout']})", row["shipped_value"],
                        row.get("candidate_value"), {k: row[k] for k in ("difference", "verdict")} if "verdict" in row else None)
              for row in rows if row["candidate"] == candidate and row["shipped"] == shipped]
    if not checks:
        checks.append(Check("corpus key", "the key task", "not measured", "not measured", "-",
                            "the run measured no key task for the shipped model", True))
    return checks


def claim_counts(claim: dict) -> tuple[int, int, int]:
    """``(held, reversed, n)`` over a claim's comparisons on the datasets' own test sets."""
    counted = [c for c in claim["comparisons"] if not c["cross_font"]]
    return (sum(c["verdict"] == HELD for c in counted), sum(c["verdict"] == REVERSED for c in counted), len(counted))


def _claim_checks(claims: dict) -> list[Check]:
    """Rule 3."""
    shipped = {c["claim"]: c for c in claims["shipped"]}
    candidate = {c["claim"]: c for c in claims["candidate"]}
    checks = []
    for text in GATED_CLAIMS:
        before, after = shipped.get(text), candidate.get(text)
        tested_before = before is not None and before["status"] != "not tested"
        tested_after = after is not None and after["status"] != "not tested"
        if not tested_before and not tested_after:
            continue
        if not tested_after:
            checks.append(Check("claim", text, _counts(before), "not tested", "-", "no longer tested", True))
            continue
        if not tested_before:
            checks.append(Check("claim", text, "not tested", _counts(after), "-", "newly tested", False))
            continue
        (h0, r0, _), (h1, r1, _) = claim_counts(before), claim_counts(after)
        worse = r1 > r0 or h1 - r1 < h0 - r0
        change = f"held {h1 - h0:+d}, reversed {r1 - r0:+d}, net {(h1 - r1) - (h0 - r0):+d}"
        checks.append(Check("claim", text, _counts(before), _counts(after), change, "worse" if worse else "not worse", worse))
    return checks


def _counts(claim: dict) -> str:
    held, reversed_, n = claim_counts(claim)
    return f"{claim['status']}: held {held}, reversed {reversed_} of {n}"


def decide(results: dict, pairs: Sequence[tuple[str, str]]) -> Decision:
    """The gate's verdict (module docstring) from a gate run's results (results.json's content).

    Raises:
        ValueError: the run was not a gate run of these pairs (no ``gate`` section, other pairs).
    """
    pairs = [tuple(p) for p in pairs]
    section = results.get("gate")
    if section is None or [tuple(p) for p in section["pairs"]] != pairs:
        ran = "no gate" if section is None else "the gate of " + ", ".join(f"{c} against {s}" for c, s in section["pairs"])
        wanted = " ".join(c for c, _ in pairs), " ".join(s for _, s in pairs)
        raise ValueError(f"this results.json holds {ran}; run `mt2 bench --gate {wanted[0]} --against {wanted[1]} --real DIR ...` "
                         "to measure these pairs")
    checks = []
    for candidate, shipped in pairs:
        system, loaded = _system(results, shipped), _system(results, candidate)
        if system is None or loaded is None:
            missing = [s for s in results["systems"] if s["label"] in (candidate, shipped) and s["status"] != "ok"]
            why = "; ".join(f"{s['label']}: {s['error']}" for s in missing) or "not in the run"
            checks.append(Check("run", f"{candidate} against {shipped}", "-", "-", "-", f"not measured ({why})", True))
            continue
        checks += _real_checks(results.get("real"), system, candidate, shipped)
        checks += _key_checks(section["key"], candidate, shipped)
    checks += _claim_checks(section["claims"])
    return Decision(pairs, checks)
