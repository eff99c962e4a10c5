"""Measurement shared by the benchmark (:mod:`mt2.bench`), the recipe study (:mod:`mt2.study`)
and the online probes of a pretraining run: the layer under the measurements, which may not
import each other, and above :mod:`mt2.training` and :mod:`mt2.inference` (the import-linter
contracts of ``pyproject.toml``).

* :mod:`~mt2.evaluation.stats`: the one bootstrap: resample counts, percentile intervals,
  paired differences on the same resamples and the verdict they decide (the benchmark's
  intervals and claims, the key-timeline measure, ``docs/recipe_round3_paired.py``);
* :mod:`~mt2.evaluation.real_music`: the real-music excerpts and label-free measures (the
  study's ``real`` columns, the benchmark's real-recordings section) and the reference key
  estimators (essentia, madmom);
* :mod:`~mt2.evaluation.model_metrics`: the model metrics that the study tabulates
  (:func:`~mt2.evaluation.model_metrics.evaluate`) and the online probes of a pretraining run
  log (:func:`~mt2.evaluation.model_metrics.online_probe`). Training may not import this layer,
  so the trainer receives its probe from its caller: ``mt2 pretrain`` passes ``online_probe`` to
  :func:`mt2.training.lightning.pretrain` (the contract: :class:`mt2.training.probes.Probe`).
"""
