"""textinterest.job_pool: dependency order, priority, errors, and worker processes."""

from __future__ import annotations

import argparse
import os

import pytest

from textinterest.apps import cli_types
from textinterest.job_pool import Job, resolve_workers, run_jobs


def _add(state, a, b):
    return state["offset"] + a + b


def _pid(state):
    return os.getpid()


def _fail(state):
    raise KeyError("no such column in the worker")


def _sleep(state, seconds):
    import time

    time.sleep(seconds)
    return seconds


def _sum_of(results, keys):
    return sum(results[k].value for k in keys)


def test_jobs_run_after_their_dependencies_and_in_priority_order():
    order = []
    jobs = [Job("c", after=("a", "b")), Job("a"), Job("b", after=("a",)), Job("d")]

    def prepare(job, results):
        order.append(job.key)
        if job.key == "c":  # built when a and b are done, from their results
            return _add, (_sum_of(results, ("a", "b")), 0)
        return _add, (1, 2)

    results = run_jobs(jobs, prepare, state={"offset": 10})
    # "c" comes first in priority but waits; "a" is the first ready job, then "b" becomes ready before "d"
    assert order == ["a", "b", "c", "d"]
    assert results["a"].value == 13 and results["b"].value == 13 and results["c"].value == 36
    assert all(r.seconds >= 0 and r.cpu_seconds >= 0 for r in results.values())


@pytest.mark.parametrize(
    "jobs, message",
    [
        ([Job("a"), Job("a")], "unique"),
        ([Job("a", after=("zz",))], "unknown"),
        ([Job("a", after=("b",)), Job("b", after=("a",))], "cycle"),
    ],
)
def test_bad_job_graphs_are_refused_before_anything_runs(jobs, message):
    ran = []
    with pytest.raises(ValueError, match=message):
        run_jobs(jobs, lambda job, results: ran.append(job) or (_add, (0, 0)), state={"offset": 0})
    assert ran == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, "many", True, None])
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(bad)


def test_auto_workers_use_one_process_on_a_gpu_and_no_more_than_the_jobs():
    assert resolve_workers("auto", device="cuda:0") == 1
    assert resolve_workers("auto", n_jobs=1) == 1
    assert 1 <= resolve_workers("auto") <= 4
    assert resolve_workers(3) == 3


def test_cli_workers_type():
    assert cli_types.workers("auto") == "auto" and cli_types.workers(" 2 ") == 2
    for bad in ("0", "two", "-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="auto"):
            cli_types.workers(bad)


def test_worker_processes_run_the_jobs_with_the_shared_state():
    jobs = [Job(("sum", i)) for i in range(4)] + [
        Job("pid-a"),
        Job("pid-b"),
        Job("total", after=(("sum", 0), ("sum", 3))),
    ]

    def prepare(job, results):
        if job.key == "total":
            return _add, (_sum_of(results, (("sum", 0), ("sum", 3))), 0)
        if isinstance(job.key, tuple):
            return _add, (job.key[1], 1)
        return _pid, ()

    info = {}
    results = run_jobs(jobs, prepare, state={"offset": 100}, workers=2, threads=1, info=info)
    assert [results[("sum", i)].value for i in range(4)] == [101, 102, 103, 104]
    assert results["total"].value == 101 + 104 + 100
    assert os.getpid() not in {results["pid-a"].value, results["pid-b"].value}  # not run here
    assert info["workers"] == 2 and info["threads"] == 1 and info["state_bytes"] > 0


def test_a_failing_job_raises_its_own_error_from_a_worker():
    jobs = [Job("ok"), Job("bad"), Job("later", after=("bad",))]
    prepared = []

    def prepare(job, results):
        prepared.append(job.key)
        return (_fail, ()) if job.key == "bad" else (_add, (1, 1))

    with pytest.raises(KeyError, match="no such column"):
        run_jobs(jobs, prepare, state={"offset": 0}, workers=2, threads=1)
    assert "later" not in prepared  # nothing that depended on the failed job started


def test_state_that_cannot_reach_a_worker_gets_a_clear_error():
    with pytest.raises(ValueError, match="workers=1"):
        run_jobs([Job("a")], lambda job, results: (_add, (1, 1)), state={"offset": lambda: 0}, workers=2)


def test_a_failure_stops_the_other_workers_instead_of_waiting_for_them():
    import multiprocessing
    import time

    jobs = [Job("slow"), Job("bad")]

    def prepare(job, results):
        return (_sleep, (60,)) if job.key == "slow" else (_fail, ())

    start = time.perf_counter()
    with pytest.raises(KeyError):
        run_jobs(jobs, prepare, state={"offset": 0}, workers=2, threads=1)
    assert time.perf_counter() - start < 30  # the 60-second job was not waited for ...
    deadline = time.perf_counter() + 10
    while multiprocessing.active_children() and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()  # ... and its worker was stopped, not left running
