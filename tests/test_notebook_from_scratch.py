"""Notebook 04's from-scratch cells reproduce the library's math, and fail when one term of it changes.

The cells tagged ``from-scratch`` compute the model by hand on a toy batch (item vectors u_i, step vectors x_j,
the LSTM's gates, keys, gamma, components, beta, the score) and every term of the training loss on one batch of
three tiny fitted models (MSE, full softmax, BPR, balance, L2), and end with ``assert torch.allclose(...)`` /
``torch.isclose`` against :class:`DynamicInterestModel` and :meth:`InterestRecommender.training_loss`. Each
perturbation below changes a single term of the library; the cells must then raise, which shows that they check
the math rather than only run. A last test reads the x_j layout the notebook states and compares it with the
order :meth:`DynamicInterestModel.steps` concatenates.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from textinterest.models import interest, interest_network
from textinterest.models.interest import DynamicInterestModel, InterestConfig

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_lstm_dynamic_interest.ipynb"


def _notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def _cells() -> list[str]:
    return [c.source for c in _notebook().cells if "from-scratch" in c.get("metadata", {}).get("tags", [])]


def _run_cells() -> dict:
    """The notebook's imports and parameters cells, then its from-scratch cells, in one namespace."""
    nb = _notebook()
    code = [c for c in nb.cells if c.cell_type == "code"]
    parameters = [c.source for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    torch.set_num_threads(1)  # tiny tensors: one thread avoids contention on a shared CPU
    for source in [code[1].source, *parameters, *_cells()]:  # code[0] is the Colab install cell
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102 - the notebook's own cells
    return namespace


def test_from_scratch_cells_exist_and_cover_every_stage():
    sources = "\n".join(_cells())
    assert len(_cells()) >= 3
    calls = (
        "toy.item_repr(",
        "toy.steps(",
        "toy.step_keys(",
        "toy.encode(",
        "toy.prefix_components(",
        "toy.score_pairs(",
    )
    for call in (*calls, ".training_loss(", "torch.allclose(", "torch.isclose("):
        assert call in sources, f"the from-scratch cells no longer compare against {call}"


def test_from_scratch_cells_match_the_library():
    ns = _run_cells()
    assert ns["comps"].shape == (2, 6, 5, 8)  # (B, T+1, C, H) with C = K + long + short
    assert ns["beta"].shape == (2, 5) and ns["score"].shape == (2,)
    assert ns["x"].shape == (2, 5, 16 + 8 + 4)  # [e | u | rating, rated, log_gap, sentiment]
    assert set(ns["checks"]) == {"MSE", "softmax", "bpr"}


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


def _rating_and_sentiment_swapped(orig):
    return lambda self, batch: orig(self, {**batch, "rating": batch["sentiment"], "sentiment": batch["rating"]})


def _without_layer_norm(orig):
    def wrapped(self, *args, **kwargs):
        norm = self.item_norm
        self.item_norm = torch.nn.Identity()
        try:
            return orig(self, *args, **kwargs)
        finally:
            self.item_norm = norm

    return wrapped


def _softmax_over_seen_items(orig):
    return staticmethod(lambda pos, scores, batch: orig(pos, scores, {**batch, "seen": batch["seen"] & False}))


M = DynamicInterestModel
PERTURBATIONS = {
    "item vector without layer norm": (M, "item_repr", _without_layer_norm),
    "rating and sentiment swapped in x_j": (M, "steps", _rating_and_sentiment_swapped),
    "no recurrence (h = z)": (interest_network, "run_sequence_encoder", lambda orig: lambda encoder, z: z),
    "keys not unit length": (M, "step_keys", lambda orig: _unnormalised_keys),
    "assignment temperature doubled": (M, "encode", lambda orig: _with_config(orig, assign_temperature=0.2)),
    "prior pseudo-count doubled": (M, "prefix_components", lambda orig: _with_config(orig, prior_count=2.0)),
    "short-term replaced by long-term": (M, "prefix_components", _short_term_is_long_term),
    "composition without 1/sqrt(H)": (M, "score_pairs", _unscaled_composition),
    "score without w . v*": (M, "score_pairs", _without_dynamic_bias),
    "MSE replaced by absolute error": (F, "mse_loss", lambda orig: lambda a, b: (a - b).abs().mean()),
    "softmax over the user's reviewed items too": (
        interest.InterestRecommender,
        "_softmax_loss",
        _softmax_over_seen_items,
    ),
    "BPR with a margin of 1": (F, "logsigmoid", lambda orig: lambda x: orig(x - 1.0)),
    "balance term doubled": (M, "assignment_penalty", lambda orig: lambda self, g, m: 2 * orig(self, g, m)),
    "bias L2 weight of 1 instead of 10": (M, "cf_penalty", lambda orig: _with_config(orig, bias_l2=1.0)),
}


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_from_scratch_cells_fail_when_one_term_of_the_library_changes(monkeypatch, name):
    owner, attribute, make = PERTURBATIONS[name]
    monkeypatch.setattr(owner, attribute, make(getattr(owner, attribute)))
    with pytest.raises(AssertionError, match="from scratch differs from the library"):
        _run_cells()


_SYMBOLS = {  # the notebook's symbols of x_j -> the batch field steps() reads for it
    r"e_j": "review",
    r"u_{i_j}": "items",
    r"r_j": "rating",
    r"\rho_j": "rated",
    r"\log(1+\Delta t_j)": "log_gap",
    r"s_j": "sentiment",
}


def _stated_layout() -> list[str]:
    """The order of x_j's parts as notebook 04's markdown writes it: ``x_j = [a \\,|\\, b ...]``."""
    text = "\n".join(c.source for c in _notebook().cells if c.cell_type == "markdown")
    found = re.search(r"x_j = \[(.+?)\]\$", text)
    assert found, "notebook 04 no longer states x_j = [...]"
    parts = [p.strip() for p in found.group(1).split(r"\,|\,")]
    unknown = [p for p in parts if p not in _SYMBOLS]
    assert not unknown, f"unknown symbols in x_j: {unknown}"
    return [_SYMBOLS[p] for p in parts]


def _library_layout(config: InterestConfig) -> list[str]:
    """The order steps() concatenates its inputs in: each field set to a marker, the others to 0."""
    model = DynamicInterestModel(config).eval()
    D, H = config.text_dim, config.hidden
    width = {"review": D, "items": H, "rating": 1, "rated": 1, "log_gap": 1, "sentiment": 1}
    seen: list[torch.Tensor] = []
    model.step_proj.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    zeros = {
        "review": torch.zeros(1, 1, D),
        "items": torch.zeros(1, 1, dtype=torch.long),
        **{k: torch.zeros(1, 1) for k in ("rating", "rated", "log_gap", "sentiment")},
        "mask": torch.ones(1, 1, dtype=torch.bool),
    }
    with torch.no_grad():
        model.item_id.weight[0].fill_(7.0)  # the item part: nonzero only through the item table
        model.steps(zeros)
        base = seen.pop()[0, 0]
        starts = {}
        for field in ("review", "rating", "rated", "log_gap", "sentiment"):
            probe = {**zeros, field: torch.full_like(zeros[field], 3.0)}
            model.steps(probe)
            changed = torch.nonzero(seen.pop()[0, 0] != base).flatten()
            if len(changed):
                assert len(changed) == width[field], field
                starts[field] = int(changed[0])
        item_cols = torch.nonzero(base != 0).flatten()  # with everything else 0, only u_i is nonzero
        assert len(item_cols) == H
        starts["items"] = int(item_cols[0])
    assert sum(width[f] for f in starts) == model.step_in  # every column is accounted for
    return sorted(starts, key=starts.get)


def test_stated_step_vector_layout_is_the_order_of_steps():
    assert _stated_layout() == _library_layout(InterestConfig(text_dim=6, hidden=4))


def test_without_sentiment_the_last_slot_is_gone():
    """The notebook says s_j is dropped (not zero-padded) without sentiment: the layout is the stated one minus s_j."""
    stated = [f for f in _stated_layout() if f != "sentiment"]
    assert _library_layout(InterestConfig(text_dim=6, hidden=4, use_sentiment=False)) == stated
