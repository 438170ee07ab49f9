"""Registry entries of the peers: one :class:`~textinterest.models.registry.ModelSpec` per model.

Every tuned peer declares a grid of ``TRIALS`` entries, the same budget as the house models, searched
on the validation split only. The Cornac models need the optional extra ``peers``; without it they
are skipped with the reason (``ModelSpec.missing``).

============== ============= ================================================================
name           tasks         what
============== ============= ================================================================
cornac-bpr     ranking       Cornac BPR (Rendle et al. 2009)
cornac-mf      rating, rank  Cornac biased MF (SGD)
cornac-hft     rating        Cornac HFT: MF tied to a topic model of the item's review text
cornac-ctr     ranking       Cornac CTR: implicit MF centred on the item's text topics
sasrec         ranking       SASRec, self-attention next-item model (torch, this package)
sasrec-text    ranking       SASRec whose item vectors add projected time-safe item text
gru4rec        ranking       GRU4Rec, GRU next-item model (torch, this package)
text-profile   ranking       static text profile: cos(mean of user's review vectors, item text)
============== ============= ================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from textinterest.models.spec import ModelSpec
from textinterest.models.train_defaults import TRAIN_DEFAULTS

__all__ = ["TRIALS", "PEER_GRIDS", "register_peers"]

TRIALS = 4  # validation trials per tuned model (the same for every model in a run)

PEER_GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "cornac-bpr": (
        {"k": 10, "learning_rate": 0.01, "lambda_reg": 0.01, "max_iter": 100},
        {"k": 50, "learning_rate": 0.05, "lambda_reg": 0.01, "max_iter": 200},
        {"k": 20, "learning_rate": 0.01, "lambda_reg": 0.001, "max_iter": 300},
        {"k": 100, "learning_rate": 0.05, "lambda_reg": 0.1, "max_iter": 200},
    ),
    "cornac-mf": (
        {"k": 10, "learning_rate": 0.01, "lambda_reg": 0.02, "max_iter": 20},
        {"k": 10, "learning_rate": 0.005, "lambda_reg": 0.05, "max_iter": 50},
        {"k": 20, "learning_rate": 0.01, "lambda_reg": 0.1, "max_iter": 20},
        {"k": 50, "learning_rate": 0.01, "lambda_reg": 0.1, "max_iter": 50},
    ),
    "cornac-hft": (
        {"k": 10, "max_iter": 5, "grad_iter": 5, "lambda_text": 0.1, "l2_reg": 0.001},
        {"k": 10, "max_iter": 5, "grad_iter": 5, "lambda_text": 0.1, "l2_reg": 0.1},
        {"k": 5, "max_iter": 5, "grad_iter": 5, "lambda_text": 1.0, "l2_reg": 0.01},
        {"k": 5, "max_iter": 5, "grad_iter": 5, "lambda_text": 0.01, "l2_reg": 1.0},
    ),
    "cornac-ctr": (
        {"k": 50, "lambda_u": 0.01, "lambda_v": 0.01, "max_iter": 50},
        {"k": 50, "lambda_u": 0.01, "lambda_v": 1.0, "max_iter": 50},
        {"k": 20, "lambda_u": 0.1, "lambda_v": 0.1, "max_iter": 50},
        {"k": 100, "lambda_u": 0.01, "lambda_v": 10.0, "max_iter": 50},
    ),
    "sasrec": (  # the first entry is the reference recipe (RecBole's SASRec defaults)
        {"hidden": 64, "n_layers": 2, "dropout": 0.5},
        {"hidden": 64, "n_layers": 2, "dropout": 0.2},
        {"hidden": 64, "n_layers": 1, "dropout": 0.5},
        {"hidden": 128, "n_layers": 2, "dropout": 0.5},
    ),
    "gru4rec": (  # the first entry is RecBole's GRU4Rec dropout at our width
        {"hidden": 64, "dropout": 0.3},
        {"hidden": 64, "dropout": 0.5},
        {"hidden": 128, "dropout": 0.3},
        {"hidden": 64, "dropout": 0.1},
    ),
}
assert all(len(g) == TRIALS for g in PEER_GRIDS.values()), "every peer gets the same number of trials"


def _build_cornac(model: str, ctx: Any) -> Any:
    from textinterest.models.peers.cornac import CornacRecommender

    return CornacRecommender(model, ctx.task, seed=ctx.seed, **ctx.params)


def _cornac_factory(model: str) -> Any:
    # a partial of a module-level function, so that a spec pickles (worker processes receive specs)
    return functools.partial(_build_cornac, model)


def _sasrec(ctx: Any) -> Any:
    from textinterest.models.peers.sequential import SASRecRecommender

    return SASRecRecommender(ctx.task, train_config=ctx.train_config, **ctx.params)


def _sasrec_text(ctx: Any) -> Any:
    from textinterest.models.peers.sequential_text import SASRecTextRecommender

    if ctx.features is None:
        raise ValueError("sasrec-text needs the review vectors of the rows it is fitted on (ctx.features)")
    return SASRecTextRecommender(
        ctx.task,
        vectors=ctx.features.review_vectors,
        item_ids=ctx.features.item_ids,
        item_vectors=ctx.features.item_vectors,
        train_config=ctx.train_config,
        **ctx.params,
    )


def _gru4rec(ctx: Any) -> Any:
    from textinterest.models.peers.sequential import GRU4RecRecommender

    return GRU4RecRecommender(ctx.task, train_config=ctx.train_config, **ctx.params)


def _text_profile(ctx: Any) -> Any:
    from textinterest.models.text_profile import TextProfileRecommender

    if ctx.features is None:
        raise ValueError("text-profile needs the review vectors of the rows it is fitted on (ctx.features)")
    return TextProfileRecommender(vectors=ctx.features.review_vectors, **ctx.params)


def register_peers(register: Callable[[ModelSpec], Any], names: Callable[[], tuple[str, ...]]) -> None:
    """Add the peers to the model registry (after the built-in models), once.

    Args:
        register, names: the registry's :func:`~textinterest.models.registry.register` and
            :func:`~textinterest.models.registry.names`.
    """
    if "sasrec" in names():
        return
    # Cornac's models: name -> (tasks, description); each needs the extra "peers"
    cornac_models = {
        "bpr": (("ranking",), "Cornac BPR (implicit feedback, pairwise ranking loss)"),
        "mf": (("rating", "ranking"), "Cornac biased matrix factorisation (SGD on ratings)"),
        "hft": (("rating",), "Cornac HFT: MF tied to a topic model of item review text"),
        "ctr": (("ranking",), "Cornac CTR: implicit MF centred on item text topics"),
    }
    for model, (tasks, description) in cornac_models.items():
        name = f"cornac-{model}"
        register(
            ModelSpec(
                name,
                _cornac_factory(model),
                tasks=tasks,
                grid=PEER_GRIDS[name],
                extra="peers",
                requires=("cornac",),
                description=description,
            )
        )
    next_item = {
        "sasrec": (_sasrec, "SASRec self-attentive next-item model (Kang & McAuley 2018)"),
        "gru4rec": (_gru4rec, "GRU4Rec next-item model (Hidasi et al. 2016), full-softmax loss"),
    }
    for name, (factory, description) in next_item.items():
        register(
            ModelSpec(
                name,
                factory,
                tasks=("ranking",),
                train_defaults=TRAIN_DEFAULTS[name],
                grid=PEER_GRIDS[name],
                description=description,
            )
        )
    register(
        ModelSpec(
            "sasrec-text",
            _sasrec_text,
            tasks=("ranking",),
            train_defaults=TRAIN_DEFAULTS["sasrec-text"],
            tuned_by="sasrec",  # the same configuration as sasrec: the comparison isolates the text
            uses_text=True,
            default=False,
            description="SASRec with item vectors = ID embedding + projected time-safe item text",
        )
    )
    register(
        ModelSpec(
            "text-profile",
            _text_profile,
            tasks=("ranking",),
            uses_text=True,
            fit_once=True,
            description="static text profile: cosine of the user's mean review vector and the item's text",
        )
    )
