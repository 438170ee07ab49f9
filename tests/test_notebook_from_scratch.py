"""Notebook 04's from-scratch cells reproduce the library's math, and fail when one term of it changes.

The cells tagged ``from-scratch`` compute the model by hand on a toy batch and end with
``assert torch.allclose(...)`` against :class:`DynamicInterestModel`. Each perturbation below changes a
single term of the library (a temperature, the prior, a component, a score term); the cells must then
raise, which shows that they check the math rather than only run.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from textinterest.models import interest
from textinterest.models.interest import DynamicInterestModel, InterestConfig

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_lstm_dynamic_interest.ipynb"


def _cells() -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c.source for c in nb.cells if "from-scratch" in c.get("metadata", {}).get("tags", [])]


def _run_cells() -> dict:
    namespace = {
        "torch": torch,
        "F": F,
        "math": math,
        "SEED": 42,
        "DynamicInterestModel": DynamicInterestModel,
        "InterestConfig": InterestConfig,
    }
    for source in _cells():
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102 - the notebook's own cells
    return namespace


def test_from_scratch_cells_exist_and_cover_every_stage():
    sources = "\n".join(_cells())
    assert len(_cells()) >= 3
    for call in ("toy.step_keys(", "toy.encode(", "toy.prefix_components(", "toy.score(", "torch.allclose("):
        assert call in sources, f"the from-scratch cells no longer compare against {call}"


def test_from_scratch_cells_match_the_library():
    ns = _run_cells()
    assert ns["comps"].shape == (2, 6, 5, 8)  # (B, T+1, C, H) with C = K + long + short
    assert ns["beta"].shape == (2, 5) and ns["score"].shape == (2,)


def _with_config(method, **changes):
    """Call ``method`` with some config fields changed for the duration of the call."""

    def wrapped(self, *args, **kwargs):
        saved = {k: getattr(self.config, k) for k in changes}
        for k, v in changes.items():
            setattr(self.config, k, v)
        try:
            return method(self, *args, **kwargs)
        finally:
            for k, v in saved.items():
                setattr(self.config, k, v)

    return wrapped


def _unnormalised_keys(self, h, z):
    return self.key_proj(torch.cat([h, z], dim=-1)).float()


def _short_term_is_long_term(orig):
    def wrapped(self, values, gamma):
        comps, den = orig(self, values, gamma)
        return torch.cat([comps[:, :, :-1], comps[:, :, -2:-1]], dim=2), den

    return wrapped


def _without_dynamic_bias(orig):
    def wrapped(self, comps, users, items=None, *args, **kwargs):
        scores, beta = orig(self, comps, users, items, *args, **kwargs)
        if items is not None:  # drop the w . v* term
            scores = scores - (beta * self.dyn_bias(comps.float())[..., 0]).sum(-1)
        return scores, beta

    return wrapped


def _unscaled_composition(orig):
    def wrapped(self, comps, users, items=None, *args, **kwargs):
        return _with_config(orig, hidden=1)(self, comps, users, items, *args, **kwargs)  # sqrt(H) -> 1

    return wrapped


PERTURBATIONS = {
    "keys not unit length": ("step_keys", lambda orig: _unnormalised_keys),
    "assignment temperature doubled": ("encode", lambda orig: _with_config(orig, assign_temperature=0.2)),
    "prior pseudo-count doubled": ("prefix_components", lambda orig: _with_config(orig, prior_count=2.0)),
    "short-term replaced by long-term": ("prefix_components", _short_term_is_long_term),
    "composition without 1/sqrt(H)": ("score", _unscaled_composition),
    "score without w . v*": ("score", _without_dynamic_bias),
}


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_from_scratch_cells_fail_when_one_term_of_the_library_changes(monkeypatch, name):
    method, make = PERTURBATIONS[name]
    monkeypatch.setattr(interest.DynamicInterestModel, method, make(getattr(interest.DynamicInterestModel, method)))
    with pytest.raises(AssertionError, match="from scratch differs from the library"):
        _run_cells()
