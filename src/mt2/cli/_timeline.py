"""``mt2 key --timeline``: the picture of a key timeline (matplotlib, an extra: never imported by
:mod:`mt2.inference`).

The top strip shows the local key over time, one coloured block per segment labelled with its
key: the hue follows the key signature around the circle of fifths (neighbouring keys get
neighbouring hues), minor keys are darker than major ones and no-key segments are grey and
hatched. Beneath it, the probability of the chosen key in each window alone (dots) and each
segment's confidence (a bar at its height).
"""
from __future__ import annotations

from pathlib import Path

from mt2.keys import parse_key, signature_of


def key_colour(key: str | None):
    """RGB of a key: hue from its signature on the circle of fifths, minor darker; grey without a key."""
    import colorsys

    if key is None:
        return (0.82, 0.82, 0.82)
    tonic, mode = parse_key(key)
    fifths = (7 * signature_of(tonic, mode)) % 12  # position on the circle of fifths
    return colorsys.hls_to_rgb(fifths / 12, 0.68 if mode == "major" else 0.45, 0.75)


def plot_timeline(timeline, path: str | Path, title: str = "") -> Path:
    """Write the picture of ``timeline`` (a :class:`mt2.inference.timeline.KeyTimeline`) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    duration = max(timeline.duration, 1e-3)
    fig, (strip, conf) = plt.subplots(2, 1, figsize=(10, 3.2), sharex=True, gridspec_kw={"height_ratios": [1.1, 1]})
    for segment in timeline.segments:
        width = segment.end - segment.start
        strip.barh(0, width, left=segment.start, height=1, color=key_colour(segment.key), edgecolor="white", linewidth=1.2,
                   hatch="//" if segment.key is None else None)
        label = segment.label if segment.key is not None else "no key"
        if width > duration * 0.045:
            short = label.replace(" major", "").replace(" minor", "m")
            text = label if width > duration * 0.11 else short
            strip.text(segment.start + width / 2, 0, text, ha="center", va="center", fontsize=9,
                       color="black" if segment.key is None or "major" in label else "white", fontweight="bold")
        conf.hlines(segment.confidence, segment.start, segment.end, color=key_colour(segment.key), linewidth=3)
    conf.plot(timeline.times, timeline.window_confidence, ".", color="0.25", markersize=3, label="window")
    strip.set_yticks([])
    strip.set_ylim(-0.5, 0.5)
    strip.set_title(title or "local key", fontsize=10, loc="left")
    strip.set_title("short labels: F# = F# major, F#m = F# minor; hatched grey: no key", fontsize=8, loc="right", color="0.4")
    conf.set_ylim(0, 1)
    conf.set_ylabel("confidence", fontsize=9)
    conf.grid(axis="y", alpha=0.3)
    conf.set_xlim(0, duration)
    conf.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{int(t // 60)}:{int(t % 60):02d}"))
    conf.set_xlabel("time (min:s)", fontsize=9)
    for axis in (strip, conf):
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_paths(plot: Path, files: list[Path]) -> list[Path]:
    """One PNG per input: ``plot`` itself for one input, ``<plot stem>-<input stem>.png`` beside it for several."""
    if len(files) == 1:
        return [plot]
    return [plot.with_name(f"{plot.stem}-{f.stem}{plot.suffix or '.png'}") for f in files]


def csv_rows(path: Path, timeline) -> list[list[str]]:
    """``[path, start, end, key, confidence]`` per segment."""
    return [[str(path), f"{s.start:.3f}", f"{s.end:.3f}", s.label, f"{s.confidence:.4f}"] for s in timeline.segments]

