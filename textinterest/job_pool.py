"""Run dependent jobs that share one read-only state, in this process or in worker processes.

An ``evaluate`` run is a set of fits (tuning trials, then every model, seed and task) that all read
the same split and text features and write nothing the others need, except the hyper-parameters a
model's tuning chose. :func:`run_jobs` runs such a set:

- ``workers=1``: one job after another in this process, in the given order;
- ``workers=N``: ``N`` *spawned* worker processes (fresh interpreters: no thread pool is inherited
  through ``fork``) each receive the pickled state once and then run single jobs, with ``threads``
  torch / BLAS / OpenMP threads each. On a 2-core CPU, two single-threaded workers finish the
  small models of a recommendation table sooner than one process with two threads, because those
  models spend most of their time in operations too small to split across threads.

A job starts when every job in its ``after`` has finished; its function and arguments are built in
this process at that moment (``prepare(job, results)``), so a fit can receive the choice its tuning
made. Among the jobs that may start, the first in the given order starts first: put long jobs early
so that short ones fill the end. Results come back keyed by job, and the caller assembles them in
its own fixed order, so what is computed does not depend on the schedule.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

__all__ = ["Job", "JobResult", "usable_cpus", "resolve_workers", "run_jobs"]

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MAX_AUTO_WORKERS = 4  # each worker holds its own copy of the state (the split and its text features)

_STATE: Any = None  # the state of this worker process (set by _init_worker)
_LIMITS: Any = None  # keeps threadpoolctl's limits alive in a worker


@dataclass(frozen=True)
class Job:
    """One unit of work: a key (unique, hashable) and the keys of the jobs that must finish first."""

    key: Hashable
    after: tuple[Hashable, ...] = ()


@dataclass(frozen=True)
class JobResult:
    """What a job returned, with its wall and CPU seconds (measured where it ran)."""

    value: Any
    seconds: float
    cpu_seconds: float


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | str, *, device: str = "cpu", n_jobs: int | None = None) -> int:
    """The number of worker processes for ``workers`` ("auto" or a positive int).

    "auto": one per usable CPU, at most ``MAX_AUTO_WORKERS`` and at most ``n_jobs``; 1 (this
    process) on a GPU, where the jobs would queue for the one device anyway, and on one CPU.
    """
    if workers == "auto":
        if device.startswith("cuda"):
            return 1
        n = min(usable_cpus(), MAX_AUTO_WORKERS)
        return max(1, min(n, n_jobs) if n_jobs else n)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be 'auto' or an integer >= 1, got {workers!r}")
    return workers


def _limit_threads(threads: int) -> None:
    global _LIMITS
    import torch
    from threadpoolctl import threadpool_limits

    for name in THREAD_ENV:  # for anything this worker starts
        os.environ[name] = str(threads)
    _LIMITS = threadpool_limits(limits=threads)  # BLAS and OpenMP pools already loaded
    torch.set_num_threads(threads)


def _init_worker(payload: bytes, threads: int) -> None:
    global _STATE
    _limit_threads(threads)
    _STATE = pickle.loads(payload)


def _timed(fn: Callable[..., Any], state: Any, args: tuple[Any, ...]) -> JobResult:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(state, *args)
    return JobResult(value, time.perf_counter() - wall, time.process_time() - cpu)


def _run_in_worker(fn: Callable[..., Any], args: tuple[Any, ...]) -> JobResult:
    return _timed(fn, _STATE, args)


def _check_jobs(jobs: Sequence[Job]) -> None:
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique")
    known = set(keys)
    for job in jobs:
        missing = [k for k in job.after if k not in known]
        if missing:
            raise ValueError(f"job {job.key!r} waits for unknown job(s) {missing}")
    done: set[Hashable] = set()
    left = list(jobs)
    while left:  # every job must become ready at some point (no cycle)
        ready = [job for job in left if all(k in done for k in job.after)]
        if not ready:
            raise ValueError(f"jobs wait for each other in a cycle: {[job.key for job in left]}")
        done.update(job.key for job in ready)
        left = [job for job in left if job.key not in done]


def run_jobs(
    jobs: Sequence[Job],
    prepare: Callable[[Job, dict[Hashable, JobResult]], tuple[Callable[..., Any], tuple[Any, ...]]],
    *,
    state: Any,
    workers: int = 1,
    threads: int | None = None,
    on_done: Callable[[Job, JobResult], None] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[Hashable, JobResult]:
    """Run ``jobs`` (in dependency order) and return their results by key.

    Args:
        jobs: the jobs, highest priority first.
        prepare: ``prepare(job, results) -> (fn, args)``, called in this process when the job may
            start; ``results`` holds every finished job. ``fn(state, *args)`` does the work; with
            workers it runs in a worker process, so ``fn`` must be a module-level function and
            ``args`` and its return value picklable.
        state: passed to every ``fn`` (pickled once per worker process).
        workers: 1 runs everything here; more spawns that many worker processes.
        threads: torch / BLAS threads per worker (default: usable CPUs // workers, at least 1).
            Ignored with one worker: this process keeps its own setting.
        on_done: called in this process after each job (e.g. progress messages).
        info: filled with ``{"workers", "threads", "state_bytes"}`` (threads and state_bytes with
            worker processes only).

    Raises:
        ValueError: duplicate keys, an unknown or cyclic dependency, or workers < 1.
        RuntimeError: a worker process died (e.g. killed for memory); the message says how to
            rerun in one process. An exception raised by a job is re-raised as it is.
    """
    workers = resolve_workers(workers)
    _check_jobs(jobs)
    results: dict[Hashable, JobResult] = {}
    info = {} if info is None else info
    info["workers"] = workers
    if workers == 1:
        pending = list(jobs)
        while pending:
            job = next(j for j in pending if all(k in results for k in j.after))
            pending.remove(job)
            fn, args = prepare(job, results)
            results[job.key] = _timed(fn, state, args)
            if on_done is not None:
                on_done(job, results[job.key])
        return results

    import multiprocessing

    threads = threads if threads is not None else max(1, usable_cpus() // workers)
    try:
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise ValueError(
            f"the shared state cannot be sent to worker processes ({error}); a model registered with a "
            "lambda or a local function as its factory can only run with workers=1"
        ) from error
    info.update(threads=threads, state_bytes=len(payload))
    pending = list(jobs)
    running: dict[Future, Job] = {}
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(payload, threads),
    )
    try:
        while pending or running:
            while len(running) < workers:
                job = next((j for j in pending if all(k in results for k in j.after)), None)
                if job is None:
                    break
                pending.remove(job)
                fn, args = prepare(job, results)
                running[pool.submit(_run_in_worker, fn, args)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    results[job.key] = future.result()
                except BrokenProcessPool as error:
                    raise RuntimeError(
                        f"a worker process died while running {job.key!r} (out of memory?); "
                        "rerun with one worker (workers=1, or --workers 1) to run every job in one process"
                    ) from error
                if on_done is not None:
                    on_done(job, results[job.key])
    except BaseException:
        # an error or Ctrl-C: stop the workers now rather than wait for the jobs they are running
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results
