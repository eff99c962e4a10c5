"""The autouse fixtures of conftest.py keep tests from leaking state into the next test."""
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
