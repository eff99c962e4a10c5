"""The tables of docs/key-inference.md from the caches of ``scripts/key_inference.py`` (run its
``cache``, ``outside`` and ``diagnose`` commands first): every variant decided from the cached
raw outputs with the package's own functions (:func:`mt2.inference.key_decision.key_statistics`,
``key_probabilities``, ``mode_given_signature``, ``pooled_key``; the timeline's ``decode`` and the
study's ``measure``), written to ``runs/key-inference/report.json``.

    python scripts/key_inference_report.py            # everything but the refitted probes
    python scripts/key_inference_report.py --probes   # then the mode probes fitted here (added to the report)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import key_inference as ki  # noqa: E402

import mt2  # noqa: E402
from mt2.inference import timeline as TL  # noqa: E402
from mt2.inference.key_decision import (  # noqa: E402
    KEYS, coverage_weights, evidence_windows, key_probabilities, key_statistics, mode_given_signature, pooled_key,
)
from mt2.keys import MODES, key_name, parse_key, signature_of, template_mode, tonic_of  # noqa: E402

E = mt2.load("mt2")
WINDOW = E.window_samples / 16000
SHIFT_SETS = {"0": (0,), "-1..1": (-1, 0, 1), "-2..2": (-2, -1, 0, 1, 2), "-3..3": tuple(range(-3, 4)), "-5..5": tuple(range(-5, 6)),
              "-7..7": tuple(range(-7, 8)), "-7..8 (all)": tuple(range(-7, 9)), "-2..8": tuple(range(-2, 9)), "-7..2": tuple(range(-7, 3))}


# -- statistics of cached clips ------------------------------------------------------------------
def statistics(clip: dict, shifts, passes: int = 1):
    """:func:`key_statistics` of a cached clip: ``passes`` of the cached passes (evenly spaced),
    windows interleaved by start as :meth:`mt2.inference.Encoder.key_statistics` has them."""
    cached = clip["passes"]
    chosen = cached[:: max(1, len(cached) // passes)][:passes]
    if len(chosen) != passes:
        raise ValueError(f"the clip has {len(cached)} cached passes, not a multiple of {passes}: cache it with more passes")
    rows = []
    for raw in chosen:
        probs, tokens = ki.group_average(E, raw, shifts)
        rows += [(raw["start"] + w * WINDOW, raw["lengths"][w], probs[w], tokens[w], raw["spectrum"][w], raw["rms"][w]) for w in range(len(probs))]
    rows.sort(key=lambda r: r[0])
    return key_statistics(np.stack([r[2] for r in rows]), np.stack([r[3] for r in rows]), np.stack([r[4] for r in rows]),
                          np.array([r[5] for r in rows]), np.array([r[1] for r in rows]), E.offset, np.array([r[0] for r in rows]), passes)


def legacy_statistics(clip: dict, shifts, weighting: str = "length"):
    """The first pass's windows, each with its own weight: valid length (``mt2 key`` before) or 1 (the study before)."""
    raw = clip["passes"][0]
    probs, tokens = ki.group_average(E, raw, shifts)
    lengths = raw["lengths"] if weighting == "length" else np.ones(len(probs))
    return key_statistics(probs, tokens, raw["spectrum"], raw["rms"], lengths, E.offset)


def canonical(tokens: np.ndarray, output_bin: int) -> np.ndarray:
    return E.model.layout.roll(torch.from_numpy(np.asarray(tokens, np.float32)), -int(output_bin)).numpy()


def linear_probe(w: np.ndarray, b: float):
    """A logistic regression for ``minor`` as a ``signature_probe`` (the encoder's contract)."""
    def signature_probe(tokens):
        def probe(signature: int) -> np.ndarray:
            p = 1 / (1 + np.exp(-(canonical(tokens, int(E.calibration.bin_of_signature(signature))) @ w + b)))
            return np.stack([1 - p, p], axis=1)
        return probe
    return signature_probe


SHIPPED = linear_probe((E.mode_probe.weight[1] - E.mode_probe.weight[0]).detach().numpy(),
                       float((E.mode_probe.bias[1] - E.mode_probe.bias[0]).detach()))


def before(stats, rule: str = "probe") -> str:
    """The decision before issue 30: argmax of the averaged calibrated profile, then the probe on the
    averaged canonical token (or the template rule)."""
    signature = int(np.argmax(E.calibration.signature_probabilities(stats.bin_probabilities)))
    if rule == "probe":
        x = canonical(stats.token, int(E.calibration.bin_of_signature(signature)))
        with torch.inference_mode():
            mode = MODES[int(E.mode_probe(torch.from_numpy(x)).argmax())]
    else:
        mode = template_mode(stats.chroma, signature)
    return key_name(tonic_of(signature, mode), mode)


def pooled(stats, probe=SHIPPED, mode: str = "product", pool: str = "log") -> str:
    """The one decision (:func:`mt2.inference.key_decision.decide_key`) with a choice of mode rule:
    ``product`` (template x probe), ``probe`` alone, ``template`` alone; ``pool``: log-linear or linear."""
    profiles = E.calibration.signature_probabilities(stats.window_probabilities)
    sp = probe(stats.window_tokens) if probe is not None and mode != "template" else None
    modes = np.stack([sp(s) for s in range(12)], axis=1) if mode == "probe" else mode_given_signature(stats.window_chroma, sp)
    p = key_probabilities(profiles, modes)
    q = pooled_key(p, stats.window_weights) if pool == "log" else stats.window_weights @ p
    return KEYS[int(np.argmax(q))]


# -- measures ----------------------------------------------------------------------------------
def moved(key: str | None, n: int) -> str | None:
    if key is None:
        return None
    tonic, mode = parse_key(key)
    return key_name((tonic + n) % 12, mode)


def followed(cache: dict, estimates: dict) -> dict:
    """Exact and signature following over (original, resampled copy) pairs."""
    base = {(d["info"]["track"], d["info"]["index"]): c for c, d in cache.items() if d["info"]["shift"] == 0}
    exact, signature = [], []
    for c, d in cache.items():
        n = d["info"]["shift"]
        if n:
            o, e = estimates[base[(d["info"]["track"], d["info"]["index"])]], estimates[c]
            exact.append(e is not None and e == moved(o, n))
            signature.append(e is not None and o is not None and (signature_of(*parse_key(e)) - signature_of(*parse_key(o)) - n) % 12 == 0)
    return {"exact": float(np.mean(exact)), "signature": float(np.mean(signature)), "pairs": len(exact)}


def against(references: dict, estimates: dict) -> dict:
    import mir_eval

    ids = list(references)
    return {"mirex": float(np.mean([mir_eval.key.weighted_score(references[i], estimates[i] or "X") for i in ids])),
            "exact": float(np.mean([references[i] == estimates[i] for i in ids])),
            "signature": float(np.mean([estimates[i] is not None and signature_of(*parse_key(estimates[i])) == signature_of(*parse_key(references[i]))
                                        for i in ids])),
            "clips": len(ids)}


_CACHE: dict = {}


def cache(name: str) -> dict:
    if name not in _CACHE:
        _CACHE[name] = ki.load_cache(name)
    return _CACHE[name]


def labels(name: str) -> dict:
    return {c: d["info"]["key"] for c, d in cache(name).items()}


def measures(decide, stats_of, followed_set: str = "real-test", corpus: str = "medium-test") -> dict:
    """Every key measure of one rule: ``decide(stats) -> key``, ``stats_of(clip) -> statistics``."""
    run = {name: {c: decide(stats_of(d)) for c, d in cache(name).items()} for name in (followed_set, corpus, "real-reference", "keys")}
    return {"real followed": followed(cache(followed_set), run[followed_set]),
            "real vs essentia": against(outside("essentia", "real-reference"), run["real-reference"]),
            "corpus": against(labels(corpus), run[corpus]), "key sets": against(labels("keys"), run["keys"])}


def outside(system: str, name: str) -> dict:
    return json.loads((ki.CACHE / f"outside-{system}-{name}.json").read_text())


# -- the timeline -----------------------------------------------------------------------------
def timeline_evidence(clip: dict, shifts, rule: str = "new", passes: int = 4):
    """(mt2, template) evidence of a cached clip: ``new`` (full windows, coverage weights, what the
    package does now) or ``before`` (windows of at least 1 s, each weighing 1)."""
    rows = []
    for raw in clip["passes"][:passes]:
        probs, tokens = ki.group_average(E, raw, shifts)
        rows += [(raw["start"] + w * WINDOW, raw["lengths"][w], probs[w], tokens[w], raw["spectrum"][w], raw["rms"][w]) for w in range(len(probs))]
    lengths = np.array([r[1] for r in rows])
    keep = evidence_windows(lengths) if rule == "new" else lengths >= min(1.0, lengths.max())
    rows = sorted((r for r, k in zip(rows, keep) if k), key=lambda r: r[0] + r[1] / 2)
    starts, lengths = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    table = {"bins": np.stack([r[2] for r in rows]), "tokens": np.stack([r[3] for r in rows]),
             "spectrum": np.stack([r[4] for r in rows]), "rms": np.array([r[5] for r in rows])}
    weights = coverage_weights(starts, lengths, passes) if rule == "new" else None
    return TL.evidence_of_rows(E, starts, lengths, clip["duration"], table, weights)


def timeline_figures(shifts, rule: str) -> dict:
    """``mt2 study --timeline data/modulations --timeline-valid data/modulations-valid`` from the cache."""
    import mt2.study.timeline as ST

    def collect(encoder, pieces, passes=4, progress=False):
        return [timeline_evidence(cache("modulations-valid" if "modulations-valid" in str(p.path) else "modulations")[p.path.stem], shifts, rule)
                for p in pieces]

    original, ST.collect_evidence = ST.collect_evidence, collect
    try:
        return ST.measure(E, ki.ROOT / "data/modulations", ki.ROOT / "data/modulations-valid")
    finally:
        ST.collect_evidence = original


def main_key(timeline) -> str | None:
    spans: dict = {}
    for s in timeline.segments:
        if s.key:
            spans[s.key] = spans.get(s.key, 0) + s.end - s.start
    return max(spans, key=spans.get) if spans else None


# -- the diagnosis ------------------------------------------------------------------------------
DIAGNOSIS = (("layers: the window rolled circularly", "roll", "original"),
             ("time edges: each window's own CQT vs the clip's", "original", "whole"),
             ("range edges, the original window's normalisation", "cut_unnormalised", "original"),
             ("range edges + per-window normalisation", "cut", "original"),
             ("resampled CQT, time-aligned (vs the cut)", "copy_aligned", "cut_whole"),
             ("resampled copy vs the cut (CQT + tempo + windows)", "copy", "cut"),
             ("resampled copy vs original (all)", "copy", "original"),
             ("the same, averaged over shifts -2..2", "copy_avg", "original_avg"))


def diagnosis(name: str, weighting: str = "length") -> dict:
    data = cache(f"diagnosis-{name}")
    out = {}
    for title, a, b in DIAGNOSIS:
        agree, tv = [], []
        for x in data.values():
            pa = ki._clip(x[a], x["copy_valid"] if a in ("copy", "copy_avg") else x["valid"], weighting)
            pb = ki._clip(x[b], x["copy_valid"] if b in ("copy", "copy_avg") else x["valid"], weighting)
            agree.append(pa.argmax() == pb.argmax())
            tv.append(0.5 * np.abs(pa - pb).sum())
        out[title] = {"argmax agrees": float(np.mean(agree)), "total variation": float(np.mean(tv)), "pairs": len(agree)}
    out["time-averaged spectrum, copy vs cut (total variation)"] = float(np.mean([x["spectrum_error"] for x in data.values()]))
    peaks = [ki._clip(x["original"], x["valid"]) for x in data.values()]
    out["clip profile: median max, median top-2 margin"] = [float(np.median([p.max() for p in peaks])),
                                                           float(np.median([np.diff(np.sort(p)[-2:])[0] for p in peaks]))]
    return out


# -- a mode probe fitted on rendered plus real music --------------------------------------------
def probe_examples(name: str, shifts) -> tuple[np.ndarray, np.ndarray]:
    """Rendered clips with a key: each full window's token rolled to the labelled signature's bin, minor flags."""
    x, y = [], []
    for d in cache(name).values():
        tonic, mode = parse_key(d["info"]["key"])
        stats = statistics(d, shifts, 1)
        x.append(canonical(stats.window_tokens, int(E.calibration.bin_of_signature(signature_of(tonic, mode)))))
        y += [mode == "minor"] * len(stats.window_tokens)
    return np.concatenate(x), np.array(y)


def consistency_pairs(shifts) -> tuple[np.ndarray, np.ndarray]:
    """Real training excerpts (no label): the clip's canonical token (windows pooled by weight) rolled to
    the signature the decision gives the original, and the copy's rolled to that signature moved by n."""
    data = cache("real-train")
    stats = {c: statistics(d, shifts, 1) for c, d in data.items()}
    base = {(d["info"]["track"], d["info"]["index"]): c for c, d in data.items() if d["info"]["shift"] == 0}
    signature = {c: signature_of(*parse_key(pooled(stats[c]))) for c in base.values()}
    a, b = [], []
    for c, d in data.items():
        n = d["info"]["shift"]
        if n:
            o = base[(d["info"]["track"], d["info"]["index"])]
            a.append(stats[o].window_weights @ canonical(stats[o].window_tokens, int(E.calibration.bin_of_signature(signature[o]))))
            b.append(stats[c].window_weights @ canonical(stats[c].window_tokens, int(E.calibration.bin_of_signature((signature[o] + n) % 12))))
    return np.array(a), np.array(b)


def fit_probe(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, c: float, lam: float) -> tuple[np.ndarray, float]:
    """Logistic regression of ``minor`` on rendered windows ``x`` (sum of losses + ``|w|^2 / 2c``) plus
    ``lam * N * mean((w . (a - b))^2)``: the probe's logit on a real excerpt and on its resampled copy
    made equal (a mode does not change under transposition; no label, no outside estimator)."""
    from scipy.optimize import minimize

    d, n, target = a - b, len(y), y.astype(float)

    def loss(theta):
        w, bias = theta[:-1], theta[-1]
        z = x @ w + bias
        p = 1 / (1 + np.exp(-z))
        value = np.sum(np.logaddexp(0, z) - target * z) + w @ w / (2 * c)
        grad = x.T @ (p - target) + w / c
        if lam:
            dz = d @ w
            value += lam * n * np.mean(dz ** 2)
            grad = grad + lam * n * 2 * d.T @ dz / len(d)
        return value, np.concatenate([grad, [np.sum(p - target)]])

    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 5000}).x
    return theta[:-1], float(theta[-1])


def probes(shifts) -> dict:
    x, y = probe_examples("medium-train", shifts)
    xv, yv = probe_examples("medium-valid", shifts)
    a, b = consistency_pairs(shifts)
    w0 = (E.mode_probe.weight[1] - E.mode_probe.weight[0]).detach().numpy()
    b0 = float((E.mode_probe.bias[1] - E.mode_probe.bias[0]).detach())
    out = {"shipped": {"valid window accuracy": float(np.mean(((xv @ w0 + b0) > 0) == yv)),
                       "real consistency": float(np.mean(((a @ w0 + b0) > 0) == ((b @ w0 + b0) > 0)))}}
    stats_of = lambda d: statistics(d, shifts, 1)  # noqa: E731
    for label, c, lam in (("rendered windows (C 1)", 1.0, 0.0), ("rendered windows + real consistency (C 1, lambda 1)", 1.0, 1.0),
                          ("rendered windows + real consistency (C 1, lambda 10)", 1.0, 10.0)):
        w, bias = fit_probe(x, y, a, b, c, lam)
        probe = linear_probe(w, bias)
        out[label] = {"valid window accuracy": float(np.mean(((xv @ w + bias) > 0) == yv)),
                      "real consistency": float(np.mean(((a @ w + bias) > 0) == ((b @ w + bias) > 0))),
                      "probe": measures(lambda s: pooled(s, probe, "probe"), stats_of),
                      "probe x template": measures(lambda s: pooled(s, probe, "product"), stats_of)}
    return out


def main() -> None:
    if "--probes" in sys.argv:
        torch.set_num_threads(1)
        out = ki.ROOT / "runs" / "key-inference" / "report.json"
        report = json.loads(out.read_text())
        report["probes"] = probes(SHIFT_SETS["-2..2"])
        out.write_text(json.dumps(report, indent=1, default=float))
        print(f"wrote {out}")
        return
    torch.set_num_threads(1)
    report: dict = {}
    s5 = SHIFT_SETS["-2..2"]
    report["diagnosis"] = {f"{n}/{w}": diagnosis(n, w) for n in ("real", "rendered") for w in ("length", "plain")}
    # outside estimators
    report["outside"] = {"essentia followed": followed(cache("real-test"), outside("essentia", "real-test")),
                         "madmom vs essentia": against(outside("essentia", "real-reference"), outside("madmom", "real-reference"))}
    # the decision rules, one cut (before issue 30) and -2..2
    rules = {"before: argmax signature, probe": lambda s: before(s, "probe"), "before: argmax signature, template": lambda s: before(s, "template"),
             "pooled, probe": lambda s: pooled(s, SHIPPED, "probe"), "pooled, template": lambda s: pooled(s, None, "template"),
             "pooled, probe x template": lambda s: pooled(s, SHIPPED, "product"),
             "linear pool, probe x template": lambda s: pooled(s, SHIPPED, "product", "linear")}
    report["rules"] = {}
    for label, shifts in (("0", (0,)), ("-2..2", s5)):
        for name, rule in rules.items():
            stats_of = (lambda d, sh=shifts: legacy_statistics(d, sh)) if name.startswith("before") else (lambda d, sh=shifts: statistics(d, sh, 1))
            report["rules"][f"{name} | shifts {label}"] = measures(rule, stats_of)
    # shift sets (pooled, probe x template, 1 pass), and the label-free choice on real training excerpts
    report["shift sets"] = {label: measures(pooled, lambda d, sh=shifts: statistics(d, sh, 1)) for label, shifts in SHIFT_SETS.items()}
    report["shift sets, real train (label-free)"] = {
        label: followed(cache("real-train"), {c: pooled(statistics(d, shifts, 1)) for c, d in cache("real-train").items()})
        for label, shifts in SHIFT_SETS.items()}
    # passes
    report["passes"] = {}
    for passes, real_set, corpus in ((1, "real-test4", "medium-test4"), (2, "real-test4", "medium-test4"), (4, "real-test4", "medium-test4")):
        report["passes"][str(passes)] = measures(pooled, lambda d, p=passes: statistics(d, s5, p), real_set, corpus)
    # agreement of mt2 key (1, 2, 4 passes) and the timeline's main key on the 144 one-key clips
    timelines = {c: main_key(TL.decode(timeline_evidence(d, s5)[0], TL.DEFAULT_SWITCH_PENALTY)) for c, d in cache("keys").items()}
    report["agreement"] = {str(p): float(np.mean([pooled(statistics(d, s5, p)) == timelines[c] for c, d in cache("keys").items()]))
                           for p in (1, 2, 4)}
    report["timeline main key vs labels"] = against(labels("keys"), timelines)
    before_timelines = {c: main_key(TL.decode(timeline_evidence(d, (0,), "before")[0], 24.0)) for c, d in cache("keys").items()}
    report["agreement before"] = float(np.mean([before(legacy_statistics(d, (0,))) == before_timelines[c] for c, d in cache("keys").items()]))
    report["timeline main key vs labels before"] = against(labels("keys"), before_timelines)
    # the timeline's figures
    report["timeline"] = {label: timeline_figures(shifts, rule) for label, shifts, rule in
                          (("before (shifts 0, windows >= 1 s, weight 1)", (0,), "before"), ("new windows, shifts 0", (0,), "new"),
                           ("new windows, shifts -2..2", s5, "new"))}
    out = ki.ROOT / "runs" / "key-inference" / "report.json"
    out.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
