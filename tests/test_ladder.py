"""The debug ladder of docs/design.md section 3, each step a test:
(1) a fixed oracle in the CPSD loss gives a value far below the trivial floor on real batches
(checks views, crops and sign); (2) a tiny model equivariant by construction reaches it."""
import json

import numpy as np
import torch

from mt2 import study
from mt2.data.views import ViewConfig, sample_views
from mt2.keys import template_key
from mt2.losses import TRIVIAL_FLOOR, cpsd_loss


def template_oracle(windows: torch.Tensor, sharpness: float = 20.0) -> torch.Tensor:
    """A fixed oracle for the equivariant head: Krumhansl key templates on the octave-folded window.

    Window bin ``j`` is folded onto index ``j mod 12`` (the offset is unknown, as it is to the
    model), the 24 key scores are pooled per key signature (max of a key and its relative), and
    a softmax with ``sharpness`` gives a 12-bin profile. A window cut ``k`` bins higher moves
    the profile by ``-k``, so plugged into the CPSD loss it checks views, crops and sign.
    """
    chroma = windows.mean(dim=-1).view(windows.shape[0], -1, 12).sum(dim=1).double().numpy()
    scores = np.stack([template_key(c)[2] for c in chroma])  # (B, 24): majors then minors
    by_signature = np.maximum(scores[:, :12], np.roll(scores[:, 12:], 3, axis=1))
    return torch.softmax(sharpness * torch.from_numpy(by_signature).float(), dim=-1)


def oracle_losses(cache, keys, seed=0):
    views = sample_views([cache[k] for k in keys], ViewConfig(), np.random.default_rng(seed))
    pa, pb, pc = (template_oracle(x) for x in (views.a, views.b, views.c))
    right = cpsd_loss(pa, pb, pc, views.shift).item()
    wrong_sign = cpsd_loss(pa, pb, pc, -views.shift).item()
    return right, wrong_sign


def test_oracle_is_far_below_the_floor_and_the_sign_matters(synthetic_corpus):
    _, rows, cache = synthetic_corpus
    right, wrong_sign = oracle_losses(cache, [r["path"] for r in rows])
    assert right < 0.35 * TRIVIAL_FLOOR
    assert wrong_sign > TRIVIAL_FLOOR


def test_tiny_equivariant_model_reaches_the_oracle(synthetic_corpus):
    _, rows, cache = synthetic_corpus
    keys = [r["path"] for r in rows if r["split"] == "train"]
    oracle, _ = oracle_losses(cache, keys)
    torch.set_num_threads(2)
    config = study.recipe(steps=60, seed=0).overlaid({
        "variant": "equivariant",
        "model": {"depth": 1, "pc_channels": 8, "heads": 2, "invariant_width": 16},
        "batch_size": 16,
        "lr": 3e-3,
        "warmup": 10,
    })
    root, _, _ = synthetic_corpus
    _, curve = study.train(config, study.training_source(root, config, root / "cache"), log=lambda _: None)
    assert curve[0]["cpsd"] > 0.9 * TRIVIAL_FLOOR
    assert np.mean([r["cpsd"] for r in curve[-10:]]) < oracle


def test_study_command_trains_evaluates_and_tabulates(synthetic_corpus, tmp_path, capsys):
    """Smoke test of ``mt2 study``: a few steps of the default recipe, one JSON line, the table."""
    from mt2.cli import main

    root, _, _ = synthetic_corpus
    (tmp_path / "cache").symlink_to(root / "cache")  # the fixture's CQT cache of the same files
    assert main(["study", "--corpus", str(root), "--configs", "pc", "--steps", "3", "--out", str(tmp_path), "--threads", "1"]) == 0
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 1 and runs[0]["name"] == "pc" and runs[0]["steps"] == 3
    for metric in ("equivariance", "best_rotation", "template", "template_linear", "instrument_knn",
                   "instrument_knn_input", "token_cosine", "token_cosine_music", "final_cpsd", "distinct_outputs"):
        assert runs[0][metric] is not None, metric
    assert 0 <= runs[0]["equivariance"] <= 1 and runs[0]["cpsd_floor"] == TRIVIAL_FLOOR
    table = (tmp_path / "table.md").read_text()
    assert "| pc | 3 |" in table and "key sig." in table
    assert (tmp_path / "models" / "pc-s0-3" / "model.safetensors").exists()
