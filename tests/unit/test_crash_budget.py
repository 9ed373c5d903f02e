"""The supervisor's restart budget: a worker that crashes now and then is restarted,
one that keeps crashing stops them all (docs/processes.md)."""

from __future__ import annotations

from pushhub_server.supervisor import CrashBudget


def test_crashes_within_the_budget_are_restarted() -> None:
    budget = CrashBudget(5, 60.0)
    assert all(budget.allow(float(at)) for at in range(5))


def test_one_crash_too_many_within_the_window_stops() -> None:
    budget = CrashBudget(5, 60.0)
    for at in range(5):
        budget.allow(float(at))
    assert not budget.allow(59.0)


def test_crashes_older_than_the_window_are_forgotten() -> None:
    budget = CrashBudget(5, 60.0)
    for at in range(5):
        budget.allow(float(at))
    assert budget.allow(64.5)  # the crashes at 0..4 s are 60 s old or more
    assert budget.allow(65.0)
