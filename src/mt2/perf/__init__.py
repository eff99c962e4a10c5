"""Performance measurements behind ``mt2 perf`` (docs/design.md section 6; issue "Performance").

In one process, with one thread count, on one decoded audio:

* :mod:`mt2.perf.embedding`: realtime factor, parameters and FLOPs of ``Encoder.embed``
  for ``mt2-tiny`` layouts (:mod:`mt2.perf.models`) and for a MERT-95M-shaped network
  (:mod:`mt2.perf.mert_shape`), a profile, and the settings tried (threads, OpenMP wait
  policy, batch, autograd mode, ``torch.compile``);
* :mod:`mt2.perf.cqt_check`: the ``fast`` CQT backend (:mod:`mt2.fast_cqt`) against nnAudio,
  agreement and speed;
* :mod:`mt2.perf.memory`: peak RSS and time of ``Encoder.embed_file`` on long files, each in
  a child process;
* :mod:`mt2.perf.training`: training steps per second and data-pipeline throughput; the
  levers of one training step (kernel options, bf16 autocast, ``torch.compile``, frames per
  token) side by side, as ratios measured in one run.

:func:`mt2.perf.run.run_perf` runs them and :func:`mt2.perf.report.write_report` writes
``docs/perf/perf.md`` and a JSON. Submodules are imported on demand, so that a child process
measuring memory loads only what embedding needs.
"""

#: The sections of a run, in order (``mt2 perf --only``).
SECTIONS = ("cqt", "embed", "memory", "training", "levers")
