"""Reuse identical torch fits within one run: :class:`FitMemo`.

An ``evaluate`` run fits the same model on the same rows with the same seed several times: the
reference-recipe SASRec is a tuning trial of ``sasrec``, the base of every ``interest+sasrec`` tuning
trial, and the base of each of that blend's ablations on every seed. A fit is a function of the
model's settings, its seed, its inputs and its training and validation rows
(:meth:`TorchRecommender.fit` seeds every random generator first), so on one machine and thread count
the second fit would give the same weights bit for bit. While a memo is active (:func:`active`), a
:class:`~textinterest.models.torch_base.TorchRecommender` whose attributes are plain values (numbers,
strings, arrays, dataclasses and containers of them; a model holding any other object, e.g. a text
encoder, is never memoised) looks its fit up by a key made of its class, those attributes (arrays and
long lists by a hash of their contents) and a hash of the rows, and
stores what it fitted for the next one. Worker processes share the memo through its folder: a
process about to fit a key claims it first (a lock file naming its process id), and another process
that needs the same key meanwhile waits for the entry instead of fitting it twice (it fits the key
itself if the claimant stops without storing it); an entry is written aside, then renamed.

The memo lives as long as the run that made it (a temporary folder): floats from another thread
count or processor would differ, so entries are never carried over to another run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FitMemo", "active", "current", "model_settings"]

_ACTIVE: FitMemo | None = None
LOG_NAME = "events.log"
POLL_SECONDS = 1.0  # how often a process waiting for another's fit of the same key looks again


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    """``value`` as nested JSON-able plain values; raises TypeError for anything else (objects, callables).

    Arrays and long sequences stand as a hash of their contents (with dtype and shape), so a model holding
    text vectors is keyed by those vectors' values.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__sequence__": _digest(json.dumps(_plain(value.tolist())).encode())}
        data = np.ascontiguousarray(value)
        return {"__array__": _digest(data.tobytes()), "dtype": str(data.dtype), "shape": list(data.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__qualname__, **fields}
    if isinstance(value, Mapping):  # keys of any plain type, in their order
        return {"__mapping__": _plain([[repr(k), v] for k, v in value.items()])}
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return items if len(items) <= 64 else {"__sequence__": _digest(json.dumps(items, sort_keys=True).encode())}
    raise TypeError(f"{type(value).__name__} is not a plain value")


def model_settings(model: Any) -> dict[str, Any] | None:
    """The unfitted ``model``'s attributes as plain values, with its class; None when one is not plain."""
    try:
        settings = _plain(vars(model))
    except TypeError:
        return None
    return {"__class__": f"{type(model).__module__}.{type(model).__qualname__}", **settings}


def _frame_hash(df: pd.DataFrame | None) -> str | None:
    """A hash of a frame's columns, dtypes and values (not its index); None for no frame."""
    if df is None:
        return None
    digest = hashlib.sha256(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


class FitMemo:
    """Fitted model states kept in a folder, keyed by model settings and data (see the module docstring).

    Args:
        directory: where entries and the event log are written (created if missing).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def key(self, model: Any, train: pd.DataFrame, val: pd.DataFrame | None) -> str | None:
        """The key of fitting the unfitted ``model`` on ``train`` (early-stopping on ``val``); None: not memoisable."""
        settings = model_settings(model)
        if settings is None:
            return None
        identity = json.dumps([settings, _frame_hash(train), _frame_hash(val)], sort_keys=True)
        return hashlib.sha256(identity.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.pkl"

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored attributes of the fitted model under ``key``, or None (then the caller fits it).

        While another live process holds the claim on ``key``, wait for its entry. Returning None
        claims ``key`` for this process until :meth:`store` or :meth:`release`.
        """
        path = self._path(key)
        while not path.exists():
            if self._claim(key):
                if not path.exists():
                    return None
                self.release(key)  # stored between the check and the claim: use it
                break
            time.sleep(POLL_SECONDS)
        with path.open("rb") as f:
            state = pickle.load(f)
        self._log("reused", key)
        return state

    def store(self, key: str, state: dict[str, Any]) -> bool:
        """Store a fitted model's attributes under ``key`` (atomically); False when they cannot be pickled.

        A fitted model that holds an unpicklable object (e.g. a text encoder with hooks loaded during the
        fit) is simply not stored: its fit stands, and the next one with this key trains again.
        """
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            os.unlink(tmp)
            self._log("unstored", key)
            self.release(key)
            return False
        os.replace(tmp, self._path(key))
        self._log("fitted", key)
        self.release(key)
        return True

    def _lock(self, key: str) -> Path:
        return self.directory / f"{key}.lock"

    def _claim(self, key: str) -> bool:
        """Take the claim on ``key``; False while another live process holds it (a dead one's claim is taken over)."""
        lock = self._lock(key)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(lock.read_text() or 0)
                except (OSError, ValueError):
                    return False  # being written or removed right now: look again later
                if owner == os.getpid():
                    return True
                if owner and _alive(owner):
                    return False
                lock.unlink(missing_ok=True)  # its claimant stopped without storing or releasing
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return True
        return False

    def release(self, key: str) -> None:
        """Give up this process's claim on ``key`` (after storing, or when its fit failed)."""
        lock = self._lock(key)
        try:
            if int(lock.read_text() or 0) == os.getpid():
                lock.unlink()
        except (OSError, ValueError):
            pass

    def _log(self, event: str, key: str) -> None:
        # one short line per event, appended: whole lines even with several worker processes
        with (self.directory / LOG_NAME).open("a") as f:
            f.write(f"{event} {key}\n")

    def counts(self) -> dict[str, int]:
        """``{"fitted", "reused", "unstored"}``: fits stored, fits answered from the memo and fits that could not
        be stored, so far (all processes)."""
        out = {"fitted": 0, "reused": 0, "unstored": 0}
        log = self.directory / LOG_NAME
        if log.exists():
            for line in log.read_text().splitlines():
                event = line.split(" ", 1)[0]
                if event in out:
                    out[event] += 1
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def active(directory: str | Path | None) -> Iterator[FitMemo | None]:
    """Make the memo in ``directory`` the one fits consult in this process (None: no memo) for the block."""
    global _ACTIVE
    kept = _ACTIVE
    _ACTIVE = FitMemo(directory) if directory is not None else None
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = kept


def current() -> FitMemo | None:
    """The memo active in this process, if any."""
    return _ACTIVE
