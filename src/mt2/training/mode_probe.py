"""The major/minor probe: the supervised part of key estimation (docs/design.md section 5).

Token 0 learns the key **signature** without labels; a key and its relative minor share
it. Which of the two a clip is in is learnt here, with labels: a logistic regression on
the **canonical** equivariant token (:meth:`~mt2.inference.Encoder.canonical_token`: the
token averaged over windows, its 12 pitch-class axis rolled so that the signature's output
bin sits at 0). Training rolls by the labelled signature's bin (through the stored
calibration); inference rolls by the estimated one, which is the same wherever the
signature is right, the only case in which the mode decides between right and wrong keys.

The L2 strength is chosen on a validation set, and the probe is **kept only if it beats
the template rule** (:func:`~mt2.keys.template_mode`) on the validation clips; the
report says which rule won and by how much. The fitted probe is an ``nn.Linear`` stored in
``encoder.mode_probe``; inference only applies it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mt2.keys import MODES, parse_key, signature_of, template_mode

#: Inverse L2 strengths tried (scikit-learn's ``C``).
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class ModeProbeReport:
    """What :func:`fit_mode_probe` measured; accuracies are shares of validation clips."""

    train_clips: int
    valid_clips: int
    c: float  # the chosen inverse L2 strength
    probe_accuracy: float  # mode right, probe on the labelled signature's canonical token
    template_accuracy: float  # mode right, template rule given the labelled signature
    kept: bool  # the probe was stored (it beat the template)

    def to_dict(self) -> dict:
        return asdict(self)


def _examples(encoder, items: list[tuple[str | os.PathLike, str]], desc: str, progress: bool):
    """Canonical tokens ``(N, D)``, minor flags ``(N,)`` and template decisions ``(N,)`` of labelled files."""
    features, minor, template = [], [], []
    for path, key in tqdm(items, desc=desc, unit="clip", disable=not progress):
        tonic, mode = parse_key(key)
        signature = signature_of(tonic, mode)
        stats = encoder.key_statistics_file(path)
        features.append(encoder.canonical_token(stats.token, int(encoder.calibration.bin_of_signature(signature))))
        minor.append(mode == "minor")
        template.append(template_mode(stats.chroma, signature) == mode)
    return np.array(features), np.array(minor), np.array(template)


def fit_mode_probe(
    encoder,
    train: list[tuple[str | os.PathLike, str]],
    valid: list[tuple[str | os.PathLike, str]],
    progress: bool = False,
) -> ModeProbeReport:
    """Fit a mode probe on ``(audio file, key name)`` pairs; store it in ``encoder.mode_probe``
    if it beats the template rule on ``valid`` (else leave the encoder as it was).

    Raises:
        ValueError: no calibration stored (:func:`mt2.training.calibrate.calibrate_encoder` first), a model without the
            pitch-class layout, a split without both modes, or an unreadable key name.
    """
    from sklearn.linear_model import LogisticRegression

    encoder.check_key_support()
    x_train, y_train, _ = _examples(encoder, train, "mode probe: train", progress)
    x_valid, y_valid, template_right = _examples(encoder, valid, "mode probe: valid", progress)
    for name, y in (("train", y_train), ("valid", y_valid)):
        if len(set(y.tolist())) < 2:
            raise ValueError(f"the {name} clips must hold both major and minor keys ({len(y)} clips given)")
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(x_train, y_train) for c in C_GRID}
    accuracy = {c: float(np.mean(fit.predict(x_valid) == y_valid)) for c, fit in fits.items()}
    best = max(C_GRID, key=lambda c: (accuracy[c], -c))  # ties: the stronger regularisation
    template_accuracy = float(np.mean(template_right))
    kept = accuracy[best] > template_accuracy
    if kept:
        encoder.mode_probe = probe_layer(fits[best].coef_[0], float(fits[best].intercept_[0])).to(encoder.device)
    return ModeProbeReport(len(y_train), len(y_valid), best, accuracy[best], template_accuracy, kept)


def probe_layer(weight: np.ndarray, bias: float) -> nn.Linear:
    """``Linear(D, 2)`` whose logit difference minor - major is ``weight . x + bias`` (a logistic
    regression for ``minor``), so its argmax is the regression's decision."""
    layer = nn.Linear(len(weight), len(MODES))
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[MODES.index("minor")] = torch.as_tensor(weight, dtype=torch.float32)
        layer.bias[MODES.index("minor")] = bias
    return layer


def fit_mode_probe_on_corpus(encoder, corpus: str | os.PathLike, progress: bool = False) -> ModeProbeReport:
    """:func:`fit_mode_probe` on a rendered corpus (``mt2 corpus render``): its train clips with
    a key label to fit, its valid clips to choose and to compare with the template."""
    from mt2.corpus import read_manifest

    corpus = Path(corpus)
    clips = [c for c in read_manifest(corpus) if c.get("key")]
    split = {name: [(corpus / c["path"], c["key"]) for c in clips if c["split"] == name] for name in ("train", "valid")}
    return fit_mode_probe(encoder, split["train"], split["valid"], progress)
