"""Work done in a forked child (pophealth.forked) and the history worked out in two halves."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

import pophealth
from pophealth import api
from pophealth.forked import ForkedWork, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork and a second core")


def test_the_child_sees_this_process_and_sends_its_result():
    table = pd.DataFrame({"a": range(1000)})  # made before the fork: the child needs no copy
    with ForkedWork(lambda: (os.getpid(), table["a"].sum())) as child:
        pid, total = child.result()
    assert pid != os.getpid() and total == 499500


def test_a_failing_child_gives_none_and_says_why():
    def work():
        raise ValueError("broken input")

    with ForkedWork(work) as child:
        assert child.result() is None
    assert child.error == "ValueError: broken input"


def test_a_child_that_does_not_answer_in_time_is_stopped():
    with ForkedWork(lambda: time.sleep(60), min_wait=0.5) as child:
        started = time.monotonic()
        assert child.result() is None
    assert time.monotonic() - started < 10
    assert "no answer" in child.error


def test_the_history_in_two_halves_is_the_history(demo_prepared, monkeypatch):
    """A batch run's process works the indicator history out in two halves (one forked):
    the same table as in one, to the last digit."""
    monkeypatch.setattr(api, "HISTORY_ROWS_PER_CHUNK", 1)  # one period a chunk: several chunks
    one = pophealth.load(demo_prepared, cache=False)
    assert len(one._period_views) > 3
    two = pophealth.load(demo_prepared, cache=False)
    two._history_in_two = True
    pd.testing.assert_frame_equal(two.indicator_history, one.indicator_history, check_exact=True)
    assert two._history_child["chunks"] > 0 and two._history_child["error"] is None
