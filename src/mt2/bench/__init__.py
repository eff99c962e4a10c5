"""The linear-probe benchmark (``mt2 bench``; docs/design.md section 6).

Frozen encoders are read through the public inference API only; one linear layer per task
is trained on their features once per probe seed, selected on the validation split and
scored once on each test set, beside classical DSP baselines measured in the same run.

* one module per task: :mod:`~mt2.bench.key`, :mod:`~mt2.bench.chords`,
  :mod:`~mt2.bench.pitch`, :mod:`~mt2.bench.instrument`, :mod:`~mt2.bench.tagging`; tempo
  and beats share one beat-activation probe with two decoders,
  :mod:`~mt2.bench.beat_activation` (what a task is: :mod:`~mt2.bench.task`);
* :mod:`~mt2.bench.features`: extraction and its cache; :mod:`~mt2.bench.probe`: the
  probe; :mod:`~mt2.bench.baselines`: the DSP baselines; :mod:`~mt2.bench.runner`: the
  run (probe seeds, test sets, cross-font test sets); :mod:`~mt2.bench.claims`: the paper's
  claims, decided by paired bootstrap intervals (:mod:`mt2.evaluation.stats`, the package's one
  bootstrap); :mod:`~mt2.bench.report`: results.json, results.md and plots;
  :mod:`~mt2.bench.gate`: the ship gate (a candidate against the shipped weights, ``--gate``).
"""
from mt2.bench import chords, instrument, key, pitch, tagging
from mt2.bench.beat_activation import BEATS, TEMPO

#: The tasks by name, in the order tables list them.
TASKS = {task.name: task for task in (key.TASK, chords.TASK, TEMPO, BEATS, pitch.TASK, instrument.TASK, tagging.TASK)}

__all__ = ["TASKS"]
