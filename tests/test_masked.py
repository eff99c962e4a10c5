"""The ``masked`` variant (issue 17): MERT's objective on the MT2 backbone. Loss against a naive
loop, its floors, span masking, the mask embedding under the pitch-class layout, k-means,
and a pretraining run through the CLI, resumed, exported and loaded."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import yaml

from mt2.losses import masked_prediction_loss, trivial_floors
from mt2.model import MT2Model, make_config
from mt2.model.masked import MASK_SPAN, MASK_START_PROB, span_mask, token_features, token_frames
from mt2.model.layout import split_tokens
from mt2.training.codebook import kmeans
from mt2.training.objective import mask_generator, masked_losses, ssl_losses
from mt2.data.views import Views


def naive_masked_loss(logits, codes, reconstruction, frames, weight):
    ce = 0.0
    for m in range(logits.shape[0]):
        row = [float(v) for v in logits[m]]
        top = max(row)
        ce += -(row[int(codes[m])] - top - math.log(sum(math.exp(v - top) for v in row)))
    mse = sum((float(r) - float(x)) ** 2 for r, x in zip(reconstruction.flatten(), frames.flatten()))
    ce, mse = ce / logits.shape[0], mse / frames.numel()
    return ce + weight * mse, ce, mse


def test_masked_loss_matches_naive_loop():
    torch.manual_seed(0)
    logits, codes = torch.randn(7, 10) * 3, torch.randint(0, 10, (7,))
    reconstruction, frames = torch.randn(7, 12), torch.rand(7, 12)
    for weight in (1.0, 0.25):
        total, ce, mse = masked_prediction_loss(logits, codes, reconstruction, frames, weight)
        expected = naive_masked_loss(logits, codes, reconstruction, frames, weight)
        assert [total.item(), ce.item(), mse.item()] == pytest.approx(expected, rel=1e-5)


def test_constant_predictions_reach_the_trivial_floors_and_no_lower():
    generator = torch.Generator().manual_seed(1)
    k = 6
    codes = torch.multinomial(torch.tensor([0.4, 0.3, 0.1, 0.1, 0.05, 0.05]), 400, replacement=True, generator=generator)
    frames = torch.rand(400, 8, generator=generator) * torch.linspace(0.5, 2, 8)
    ce_floor, mse_floor = trivial_floors(codes, frames, k)
    q = torch.bincount(codes, minlength=k).float() / len(codes)
    best = masked_prediction_loss(q.log().expand(400, k), codes, frames.mean(0).expand(400, 8), frames)
    assert best[1].item() == pytest.approx(ce_floor, rel=1e-5) and best[2].item() == pytest.approx(mse_floor, rel=1e-5)
    other = masked_prediction_loss(torch.zeros(400, k), codes, frames.mean(0).expand(400, 8) + 0.1, frames)
    assert other[1] > best[1] + 0.05 and other[2] > best[2] + 0.005
    assert trivial_floors(torch.arange(100).repeat(3), frames[:300], 100)[0] == pytest.approx(math.log(100))


def test_masked_loss_rejects_bad_inputs():
    with pytest.raises(ValueError, match="one code per row"):
        masked_prediction_loss(torch.zeros(3, 5), torch.zeros(2, dtype=torch.long), torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="share one shape"):
        masked_prediction_loss(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long), torch.zeros(3, 4), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no masked position"):
        masked_prediction_loss(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4), torch.zeros(0, 4))


def test_span_mask_hides_about_half_of_31_tokens_in_spans():
    mask = span_mask(4000, 31, np.random.default_rng(0))
    assert mask.dtype == torch.bool and mask.shape == (4000, 31)
    assert 0.45 < mask.float().mean().item() < 0.50  # 1 - (1 - 0.2)^3 = 0.488 away from the start
    assert torch.equal(mask, span_mask(4000, 31, np.random.default_rng(0)))
    # every run of masked tokens is at least one span long unless it touches the end
    for row in mask[:200].tolist():
        runs, length = [], 0
        for value in row + [False]:
            if value:
                length += 1
            elif length:
                runs.append(length)
                length = 0
        ends_at_edge = row[-1]
        assert all(r >= MASK_SPAN for r in (runs[:-1] if ends_at_edge else runs))
    assert (MASK_START_PROB, MASK_SPAN) == (0.2, 3)
    assert not span_mask(3, 31, np.random.default_rng(0), start_prob=0.0).any()
    with pytest.raises(ValueError, match="start_prob"):
        span_mask(1, 31, np.random.default_rng(0), start_prob=1.5)


def test_token_targets_follow_the_patch_order():
    window = torch.rand(2, 84, 126)
    frames = token_frames(window, 4)
    assert frames.shape == (2, 31, 336)
    torch.testing.assert_close(frames[1, 5, 84:168], window[1, :, 21])  # token 5, its second frame
    features = token_features(window, 4)
    torch.testing.assert_close(features[0, 3], torch.log(window[0, :, 12:16].mean(-1) + 1e-2))


def masked_model(layout: str = "pitch-class") -> MT2Model:
    torch.manual_seed(0)
    config = make_config("mt2-mini", "masked", layout=layout, frames_per_token=4, depth=2, codebook_size=16)
    model = MT2Model(config)
    model.masked_prediction.set_codebook(torch.rand(16, 84))
    return model


def test_masked_variant_config_and_errors():
    model = masked_model()
    assert model.config.roles == ("masked",) and model.equivariant_head is None and model.contrastive_head is None
    with pytest.raises(ValueError, match="variant of its own"):
        make_config("mt2-mini", "mt2", roles=("equivariant", "masked"))
    with pytest.raises(ValueError, match="mask embedding"):
        MT2Model(make_config("mt2-mini", "mt2")).tokenize(torch.rand(1, 84, 8), torch.zeros(1, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not fit"):
        model.masked_prediction.set_codebook(torch.rand(10, 84))
    fresh = MT2Model(make_config("mt2-mini", "masked", codebook_size=16))
    with pytest.raises(ValueError, match="all zeros"):
        fresh.masked_prediction.targets(torch.rand(1, 84, 126))
    views = Views(*(torch.rand(2, 84, 126) for _ in range(3)), shift=torch.tensor([1, 2]), offset=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="generator"):
        ssl_losses(model, views)


def test_masked_tokens_keep_the_equivariant_stream_equivariant():
    """Mask embedding expanded over the 12 pitch classes: a roll of the input still rolls the
    equivariant part of every token, masked or not."""
    model = masked_model().eval()
    c = model.config.pc_channels
    x = torch.rand(2, 84, 126)
    mask = span_mask(2, 31, np.random.default_rng(3))
    assert mask.any()
    e = split_tokens(model.forward_features(x, mask), c)[0]
    for k in (1, 5):
        rolled = split_tokens(model.forward_features(torch.roll(x, k, dims=1), mask), c)[0]
        torch.testing.assert_close(rolled, torch.roll(e, k, dims=2), atol=1e-4, rtol=1e-4)
    # and the mask changes the output of masked and unmasked positions alike (attention)
    assert not torch.allclose(model.forward_features(x, mask), model.forward_features(x))


@pytest.mark.parametrize("layout", ["pitch-class", "plain"])
def test_masked_losses_train_on_a_fixed_batch(layout):
    model = masked_model(layout)
    x = torch.rand(4, 84, 126) ** 2
    views = Views(x, x, x, shift=torch.ones(4), offset=torch.zeros(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    values = []
    for step in range(15):
        losses = masked_losses(model, views, mask_generator(0, step, 0))
        optimizer.zero_grad()
        losses.total.backward()
        optimizer.step()
        values.append(losses.total.item())
    assert losses.masked_ce is not None and losses.cpsd is None
    assert model.masked_prediction.mask_embedding.grad.abs().sum() > 0
    assert np.mean(values[-3:]) < 0.8 * np.mean(values[:3])


def test_kmeans_is_deterministic_and_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(size=(50, 2)) * 0.3 for c in centres])
    centroids, info = kmeans(x, 3, seed=4)
    again, _ = kmeans(x, 3, seed=4)
    np.testing.assert_array_equal(centroids, again)
    assert np.abs(np.sort(centroids, axis=0) - np.sort(centres, axis=0)).max() < 0.2
    assert info["inertia"] < 0.3 and info["iterations"] < 20
    # more clusters than distinct vectors: emptied clusters are refilled, nothing is NaN
    centroids, _ = kmeans(np.repeat(centres, 2, axis=0), 5, seed=0)
    assert np.isfinite(centroids).all()
    with pytest.raises(ValueError, match="at least k"):
        kmeans(x[:2], 3, seed=0)


# -- the run through the CLI --------------------------------------------------------------------
TINY = {
    "model": {"depth": 1, "pc_channels": 8, "heads": 2, "invariant_width": 16, "projection_dim": 16, "projection_hidden": 32,
              "codebook_size": 16},
    "batch_size": 4, "warmup": 2, "log_every": 1, "lr": 3e-3,
}


@pytest.mark.slow
def test_pretrain_masked_cli_trains_resumes_exports_and_loads(synthetic_corpus, tmp_path):
    import mt2
    from mt2.cli import main
    from mt2.training.codebook import CODEBOOK_FILE, load_codebook

    root, _, _ = synthetic_corpus
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "checkpoint_every": 10}))
    out = tmp_path / "run"
    common = ["--data", str(root), "--out", str(out), "--cache-dir", str(root / "cache"), "--no-progress"]
    assert main(["pretrain", "--variant", "masked", "--config", str(config), "--max-steps", "20", "--probe-every", "0", *common]) == 0
    centroids, info = load_codebook(out / CODEBOOK_FILE)
    assert centroids.shape == (16, 84) and info["vectors"] == 64 * 4 * 31 and info["frames_per_token"] == 4
    state = torch.load(out / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(state["model.masked_prediction.codebook"], centroids)
    with open(out / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("masked_ce")]
    ce = [float(r["masked_ce"]) for r in rows]
    assert len(ce) >= 15 and np.mean(ce[-5:]) < np.mean(ce[:5])

    stamp = (out / CODEBOOK_FILE).stat().st_mtime_ns
    assert main(["pretrain", "--resume", "--max-steps", "22", *common]) == 0
    assert (out / CODEBOOK_FILE).stat().st_mtime_ns == stamp  # reused, not refitted

    assert main(["export", str(out / "last.ckpt"), str(tmp_path / "exported")]) == 0
    encoder = mt2.load(tmp_path / "exported")
    assert encoder.readouts == ("masked", "average", "frames") and encoder.training_info["variant"] == "masked"
    audio = np.random.default_rng(0).normal(size=16000 * 5).astype(np.float32) * 0.1
    frames = encoder.embed(audio, 16000, readout="frames")
    assert frames.clip.shape == (encoder.embedding_size,) and np.isfinite(frames.clip).all()
    with pytest.raises(ValueError, match="equivariant"):
        encoder.key(audio, 16000)


def test_codes_are_computed_in_fp32_under_bf16_autocast():
    model = masked_model()
    model.masked_prediction.set_codebook(torch.rand(16, 84) * 0.01 + torch.linspace(-4, 0.5, 84))  # near-tied centroids
    x = torch.rand(4, 84, 126)
    codes = model.masked_prediction.targets(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(model.masked_prediction.targets(x)[0], codes)
