"""Notebook 03's from-scratch cells (ranking metrics, matrix factorisation by SGD) match the library, and fail
when one term of it changes.

The cells tagged ``from-scratch`` compute HR@K, NDCG@K and MRR by hand for a few users and train a biased matrix
factorisation by SGD in plain numpy, then assert agreement with :func:`evaluate_ranking` and with Surprise's
``SVD``. Each perturbation below changes one term of the library; the cells must then raise.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from textinterest import evaluation
from textinterest.models import baselines

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_cf_baselines.ipynb"


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[str]:
    return [c.source for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


@pytest.fixture(scope="module")
def setup_namespace() -> dict:
    """The notebook's imports, parameters and split (default synthetic world), as its cells build them."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    imports = code[1]  # code[0] is the Colab install cell
    data = next(s for s in code if "split_interactions(" in s and "load_dataset(" in s)
    namespace: dict = {}
    for source in (imports, *_tagged(nb, "parameters"), data):
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102 - the notebook's own cells
    return namespace


def _run_cells(namespace: dict) -> dict:
    ns = dict(namespace)
    for source in _tagged(nbformat.read(NOTEBOOK, as_version=4), "from-scratch"):
        exec(compile(source, str(NOTEBOOK), "exec"), ns)  # noqa: S102
    return ns


def test_from_scratch_cells_compare_against_the_library():
    sources = "\n".join(_tagged(nbformat.read(NOTEBOOK, as_version=4), "from-scratch"))
    for call in ("evaluate_ranking(", 'make_model("SVD"', "np.isclose(", "np.allclose("):
        assert call in sources, f"the from-scratch cells no longer use {call}"


def test_from_scratch_cells_match_the_library(setup_namespace):
    ns = _run_cells(setup_namespace)
    assert set(ns["by_hand"]) == {"Popularity", "SVD"}
    assert len(ns["by_hand"]["SVD"]) >= 5  # a handful of users
    assert (ns["by_hand"]["Popularity"]["tied"] > 0).any(), "popularity should show ties, the case worth checking"
    assert abs(ns["mf_rmse"] - ns["svd_rmse"]) < 0.01


def _ties_pessimistic(orig):
    return lambda higher, tied, ks, ties: orig(higher, tied, ks, "pessimistic")


def _training_items_kept(orig):
    return lambda scores, exclude, targets: orig(scores, None, targets)


def _ranks_from_one(orig):
    return lambda higher, tied, ks, ties: orig(higher + 1, tied, ks, ties)


def _svd_with(**params):
    def make(orig):
        def fit(self, train, *args, **kwargs):
            if self.name == "SVD":
                self.params.update(params)
            return orig(self, train, *args, **kwargs)

        return fit

    return make


PERTURBATIONS = {
    "pessimistic ties": (evaluation, "_metrics_from_counts", _ties_pessimistic),
    "training items not excluded": (evaluation, "_case_counts", _training_items_kept),
    "ranks counted from 1": (evaluation, "_metrics_from_counts", _ranks_from_one),
    "SVD without biases": (baselines.SurpriseModel, "fit", _svd_with(biased=False)),
    "SVD with another regularisation": (baselines.SurpriseModel, "fit", _svd_with(reg_all=0.05)),
    "SVD with fewer epochs": (baselines.SurpriseModel, "fit", _svd_with(n_epochs=10)),
}


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_from_scratch_cells_fail_when_one_term_of_the_library_changes(monkeypatch, setup_namespace, name):
    owner, attribute, make = PERTURBATIONS[name]
    monkeypatch.setattr(owner, attribute, make(getattr(owner, attribute)))
    with pytest.raises(AssertionError, match="from scratch differs from the library"):
        _run_cells(setup_namespace)
