import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_corpus  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """``(root, manifest rows, CQT cache)`` of the synthetic scale-and-cadence corpus."""
    from mt2.data.cqt_cache import build_cqt_cache

    root = tmp_path_factory.mktemp("synthetic")
    manifest = write_synthetic_corpus(root)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    cache = build_cqt_cache([r["path"] for r in rows], root, root / "cache", progress=False)
    return root, rows, cache
