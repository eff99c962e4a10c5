"""Timing, FLOP counting and profiling helpers shared by the ``mt2 perf`` sections."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(count)``, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def best_times(works: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """The shortest wall time in seconds of each of ``works`` over ``repeats`` rounds, after
    ``warmup`` untimed rounds. A round calls every work once, in turn, so that a change in the
    load of the machine during the measurement affects all of them alike.

    The minimum is the run least disturbed by other processes; the cost of the work itself
    is a lower bound of every run.
    """
    for _ in range(warmup):
        for work in works.values():
            work()
    best = {name: float("inf") for name in works}
    for _ in range(max(1, repeats)):
        for name, work in works.items():
            start = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def best_time(work: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """:func:`best_times` of a single work."""
    return best_times({"work": work}, repeats, warmup)["work"]


def count_flops(work: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``work`` as ``torch.utils.flop_counter`` counts them.

    The counter covers matrix products, convolutions and attention (a multiply-add is two
    operations); element-wise operations and FFTs are not counted.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        work()
    return int(counter.get_total_flops())


def top_operators(work: Callable[[], object], count: int = 5) -> list[dict]:
    """The ``count`` operators with the most self CPU time in one profiled call of ``work``:
    ``[{"name", "share" (of the total self time), "ms"}]``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        work()
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"name": e.key, "share": e.self_cpu_time_total / total, "ms": e.self_cpu_time_total / 1000}
        for e in events[:count]
    ]


def load_average() -> float:
    """The one-minute load average of the machine (runnable processes; 2 cores are busy at 2)."""
    return round(os.getloadavg()[0], 2)
