"""The real-music section of the benchmark's report (``results.md``): tables of what
:func:`mt2.bench.real.run_real` measured (identification, same-track retrieval, MT2 against the
anchors, key without labels, key against essentia on longer excerpts), read from its JSON section.
"""
from __future__ import annotations

from mt2.evaluation.stats import HELD, REVERSED
from mt2.tables import interval_cell, markdown_table


def _negated(difference: dict | None) -> tuple[str, str]:
    """A paired ``anchor minus first`` entry as ``first minus anchor`` (cell, verdict)."""
    if not difference:
        return "–", "–"
    value, low, high = difference["difference"]
    flipped = {HELD: REVERSED, REVERSED: HELD}.get(difference["verdict"], difference["verdict"])
    return interval_cell([-value, -high, -low]), flipped


def _anchor_lines(section: dict) -> list[str]:
    """The table "first system minus each anchor" (paired; :func:`anchor_pairs`), or nothing."""
    measures = [("identification", "accuracy", "identification"), ("retrieval", "top1", "same-track top-1"),
                ("holdout_retrieval", "top1", "held-out top-1")]
    body = []
    for name, against in section.get("anchors", {}).items():
        cells = []
        for part, metric, _ in measures:
            cells += _negated(section.get(part, {}).get(name, {}).get("paired", {}).get(metric))
        body.append([f"{against} minus {name}", *cells])
    if not body:
        return []
    header = ["paired difference"] + [f"{title}{suffix}" for _, _, title in measures for suffix in ("", " verdict")]
    return ["", "### MT2 against the anchors (paired, same resamples)", ""] + markdown_table(header, body)


def real_markdown(section: dict) -> list[str]:
    """The report's real-music section (lines of Markdown)."""
    lines = ["## Real recordings", ""]
    if "skipped" in section:
        return lines + [f"Skipped: {section['skipped']}", ""]
    corpus, ex = section["corpus"], section["excerpts"]
    lines += [f"Corpus `{section['folder']}`: {corpus['tracks']} tracks (splits by track: "
              + ", ".join(f"{k} {v}" for k, v in corpus["splits"].items()) + "); hours per soundtrack: "
              + ", ".join(f"{k} {v:.2f}" for k, v in corpus["hours"].items()) + ".",
              f"Excerpts of {ex['seconds']:g} s: " + ", ".join(f"{k} {v}" for k, v in ex["by_split"].items())
              + f"; {ex['shifted']} pitch-shifted copies of the test excerpts (n = {ex['shifts'][0]}..+{ex['shifts'][-1]} "
              "semitones, by resampling). Intervals: 95 % bootstrap over test tracks.", ""]
    lines += ["### Soundtrack identification (linear probe, test tracks)", ""]
    ident = section["identification"]
    lines += markdown_table(["features", "accuracy", "minus MFCC (paired)", "verdict"],
                            [[name, interval_cell(r["accuracy"]), interval_cell(r.get("minus_mfcc")), r.get("verdict", "–")]
                             for name, r in ident.items()])
    lines += ["", "### Same-track retrieval (cosine, no probe)", ""]
    lines += markdown_table(["features", "top-1", "MRR"],
                            [[name, interval_cell(r["top1"]), interval_cell(r["mrr"])]
                             for name, r in section["retrieval"].items()])
    if section.get("holdout_retrieval"):
        lines += ["", "### Same-track retrieval on the held-out soundtrack (cosine, no probe)", ""]
        lines += markdown_table(["features", "top-1", "MRR"], [[name, interval_cell(r["top1"]), interval_cell(r["mrr"])]
                                                               for name, r in section["holdout_retrieval"].items()])
    lines += _anchor_lines(section)
    lines += ["", "### Key without labels", ""]
    lines += ["Extras: " + "; ".join(f"{k}: {v}" for k, v in section["extras"].items()) + ".", ""]
    names = list(section["key"])
    others = [n for n in ("madmom", "essentia") if n in names] + [n for n in names if n not in ("madmom", "essentia")]
    header = ["estimator", "no key", "transpositions followed"] + [f"agrees with {o}" for o in others] + ["MIREX vs madmom"]
    body = []
    for name, r in section["key"].items():
        body.append([name, interval_cell(r["no_key"]), interval_cell(r["followed"])]
                    + [interval_cell(r.get(f"agree_{o}")) for o in others]
                    + [f"{r['mirex_vs_madmom']:.3f}" if "mirex_vs_madmom" in r else "–"])
    for name, status in section["extras"].items():
        if name not in section["key"]:
            body.append([name, status, status] + ["–"] * len(others) + ["–"])
    lines += markdown_table(header, body) + [""]
    reference = section.get("reference") or {}
    if reference.get("systems"):
        lines += ["### Key against essentia on longer excerpts", "",
                  f"`encoder.key` on {reference['excerpts']} excerpts of {reference['seconds']:g} s ({reference['tracks']} valid and "
                  f"test tracks, three each) against essentia's key ({reference['reference']}); signature: same key signature "
                  "(a key or its relative). Intervals over tracks; the difference is paired, against the first system.", ""]
        lines += markdown_table(["system", "MIREX vs essentia", "signature agrees", f"MIREX minus {reference['first']}", "verdict"],
                                [[name, interval_cell(r["mirex"]), interval_cell(r["signature"]),
                                  interval_cell(r.get("mirex_minus_first")), r.get("verdict", "–")]
                                 for name, r in reference["systems"].items()]) + [""]
    elif reference.get("skipped"):
        lines += [f"Key against essentia on longer excerpts: skipped ({reference['skipped']}).", ""]
    return lines
