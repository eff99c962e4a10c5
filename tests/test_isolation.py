"""conftest.py: the autouse fixtures keep tests from leaking state into the next test, and tests
marked ``apt`` run only where apt-get can reach the archive as root."""
import pytest
import torch

_FOUND: list[int] = []


def test_a_test_may_change_the_thread_count():
    _FOUND.append(torch.get_num_threads())
    torch.set_num_threads(_FOUND[0] + 1)


def test_the_next_test_finds_the_thread_count_restored():
    if not _FOUND:
        pytest.skip("runs after test_a_test_may_change_the_thread_count")
    assert torch.get_num_threads() == _FOUND[0]


def test_apt_tests_need_root(monkeypatch):
    """Tests marked ``apt`` are skipped unless root (conftest.apt_unavailable)."""
    import conftest

    conftest.apt_unavailable.cache_clear()
    monkeypatch.setattr(conftest.os, "geteuid", lambda: 1000)
    try:
        assert conftest.apt_unavailable() == "apt test: needs root"
    finally:
        conftest.apt_unavailable.cache_clear()
