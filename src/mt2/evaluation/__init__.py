"""Measurement shared by the benchmark (:mod:`mt2.bench`) and the recipe study (:mod:`mt2.study`),
which may not import each other: the layer under both, above :mod:`mt2.training` and
:mod:`mt2.inference` (the import-linter contracts of ``pyproject.toml``).

* :mod:`~mt2.evaluation.stats`: the one bootstrap: resample counts, percentile intervals,
  paired differences on the same resamples and the verdict they decide (the benchmark's
  intervals and claims, the key-timeline measure, ``docs/recipe_round3_paired.py``);
* :mod:`~mt2.evaluation.real_music`: the real-music excerpts and label-free measures (the
  study's ``real`` columns, the benchmark's real-recordings section) and the reference key
  estimators (essentia, madmom).

The model metrics that the online probes of a pretraining run log and the study tabulates
(:func:`mt2.training.probe_metrics.evaluate`) stay in :mod:`mt2.training`: the trainer runs them,
and training may not import this layer.
"""
