import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_corpus  # noqa: E402


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Every test leaves torch's intra-op thread count as it found it (tests and the commands
    they run call ``torch.set_num_threads``)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """``(root, manifest rows, CQT cache)`` of the synthetic scale-and-cadence corpus."""
    from mt2.data.cqt_cache import build_cqt_cache

    root = tmp_path_factory.mktemp("synthetic")
    manifest = write_synthetic_corpus(root)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    cache = build_cqt_cache([r["path"] for r in rows], root, root / "cache", progress=False)
    return root, rows, cache
