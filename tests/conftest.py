import functools
import json
import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_corpus  # noqa: E402


def pytest_runtest_setup(item):
    """Tests marked ``apt`` (they run ``apt-get`` against the package archive) run only as root
    with the archive reachable; elsewhere they are skipped, so the default run needs neither."""
    if item.get_closest_marker("apt") is not None:
        why = apt_unavailable()
        if why:
            pytest.skip(why)


@functools.cache
def apt_unavailable() -> str | None:
    """Why ``apt`` tests cannot run here (not root, no apt sources, archive unreachable), or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "apt test: needs root"
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list"),
               *Path("/etc/apt/sources.list.d").glob("*.sources")]
    text = "\n".join(p.read_text(errors="replace") for p in sources if p.is_file())
    uris = [u for line in text.splitlines() if not line.lstrip().startswith("#")
            for u in re.findall(r"(?:https?)://\S+", line)]
    if not uris:
        return "apt test: no http(s) apt source configured"
    address = urlsplit(uris[0])
    try:
        socket.create_connection((address.hostname, address.port or (443 if address.scheme == "https" else 80)), timeout=3).close()
    except OSError as error:
        return f"apt test: the package archive is not reachable ({error})"
    return None


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
