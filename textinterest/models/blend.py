"""The interest model on a base it cannot lose to on validation: :class:`BlendRecommender`.

A blend holds a collaborative-filtering **base** (e.g. Cornac BPR for ranking, biased MF for
ratings) and an **interest** model, both fitted on the same training rows, and mixes them with a
weight ``w`` in [0, 1]:

- ranking: ``s(u, i) = (1 - w) * z_u(b)(i) + w * z_u(t)(i)``, where ``b`` is the base's score, ``t`` the
  interest model's score and ``z_u`` the z-score over the catalogue for user ``u`` (the two scales
  differ: BPR dot products against softmax logits). ``w = 0`` returns the base's scores themselves and
  ``w = 1`` the interest model's (each ranks as its z-scores do);
- rating: ``r(u, i) = b(u, i) + w * (t(u, i) - b(u, i))``: the interest model's deviation from the
  base, scaled by ``w`` (no standardisation: both are ratings).

``w`` is chosen on the validation split from the declared grid :data:`BLEND_WEIGHTS`, 0 to 1 in steps
of 0.1: the base alone and the interest model alone are both points of the search, so on validation
the blend is never below either (ties go to the smaller weight, i.e. towards the base). The base's own
hyper-parameters are chosen on the same validation split from ``base_grid`` (the base's registry
grid) before ``w`` is.

Refitting (the ``val-in-history`` protocol refits on train + validation without looking at
validation again): :meth:`BlendRecommender.refit_settings` returns what validation chose (``w``,
the base's parameters and each part's early-stopped epoch count) and
:meth:`BlendRecommender.use_settings` makes a fresh blend fit with exactly those, each torch part
for its own number of epochs with early stopping off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import RATING_COL
from textinterest.evaluation import evaluate_ranking, rmse
from textinterest.models.base import TASKS, Capabilities, Recommender

__all__ = ["BLEND_FAMILIES", "BLEND_VARIANTS", "BLEND_WEIGHTS", "BlendRecommender", "blend_scores", "blend_ratings"]

#: the registry's blends (``interest+cf``, ``interest+sasrec`` and their ablations). A family names its base
#: per task and which of the base's candidates the blend chooses among on validation: "grid" (the base's own
#: registry grid, searched inside every blend fit) or "tuned" (the base's own validated choice when the same
#: ``evaluate`` run tunes the base, so that the blend's base is that very model and its fits are reused; else
#: its grid's first entry, the published recipe: a SASRec fit costs minutes, and the grid would multiply them)
BLEND_FAMILIES: dict[str, tuple[dict[str, str], str]] = {
    "interest+cf": ({"ranking": "cornac-bpr", "rating": "mf"}, "grid"),  # the strongest validated ID-only CF
    "interest+sasrec": ({"ranking": "sasrec"}, "tuned"),  # order carries the signal: the next-item model
}
#: each family's ablations swap the interest variant blended in and reuse the family model's tuned parameters
BLEND_ABLATIONS = {v.removeprefix("interest"): v for v in ("interest", "interest-no-text", "interest-no-lstm")}
BLEND_ABLATIONS["-no-sentiment"] = "interest-no-sentiment"
#: blend name -> (its family, the interest variant blended in)
BLEND_VARIANTS: dict[str, tuple[str, str]] = {
    family + suffix: (family, part) for family in BLEND_FAMILIES for suffix, part in BLEND_ABLATIONS.items()
}

#: weights of the interest model searched on validation; 0 = the base alone, 1 = the interest model alone
BLEND_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(11))


def _standardise(scores: np.ndarray) -> np.ndarray:
    """Per-row z-scores (a row with no spread becomes zeros)."""
    sd = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def blend_scores(base: np.ndarray, interest: np.ndarray, weight: float) -> np.ndarray:
    """Ranking scores ``(1 - weight) * z(base) + weight * z(interest)`` per row, float32.

    ``weight=0`` returns ``base`` and ``weight=1`` returns ``interest`` exactly (as float32).

    Args:
        base: (B, N) base scores.
        interest: (B, N) interest scores of the same items, in the same column order.
        weight: the interest model's weight, in [0, 1].
    """
    if base.shape != interest.shape:
        raise ValueError(f"base scores {base.shape} and interest scores {interest.shape} differ in shape")
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if weight in (0, 1):
        return np.asarray(interest if weight else base, dtype=np.float32)
    b, t = (_standardise(np.asarray(s, dtype=np.float64)) for s in (base, interest))
    return ((1 - weight) * b + weight * t).astype(np.float32)


def blend_ratings(base: np.ndarray, interest: np.ndarray, weight: float, bounds: tuple[float, float]) -> np.ndarray:
    """Ratings ``base + weight * (interest - base)``, clipped to ``bounds`` (``weight=0``: ``base`` exactly)."""
    base = np.asarray(base, dtype=np.float64)
    if weight == 0:
        return base
    return np.clip(base + weight * (np.asarray(interest, dtype=np.float64) - base), *bounds)


def _epochs(model: Recommender) -> int | None:
    """The early-stopped epoch count of a torch model (None: the model does not early-stop)."""
    result = getattr(model, "train_result_", None)
    return int(result.best_epoch + 1) if result is not None and result.best_epoch >= 0 else None


def _fixed_epochs(model: Recommender, epochs: int | None) -> Recommender:
    """``model`` set to train for exactly ``epochs`` epochs with early stopping off (None: unchanged)."""
    if epochs is not None and hasattr(model, "train_config"):
        model.train_config = replace(model.train_config, epochs=int(epochs), patience=0)
    return model


class BlendRecommender(Recommender):
    """A base recommender plus a weighted interest score, the weight chosen on validation.

    Args:
        task: "ranking" or "rating".
        make_base: ``make_base(params)`` -> an unfitted base model with those hyper-parameters.
        base_grid: the base's candidate hyper-parameters, chosen on validation (first wins ties);
            empty: one candidate with ``{}``.
        make_interest: ``make_interest()`` -> an unfitted interest model (text inputs included).
        weights: the declared grid of interest weights in [0, 1]; must contain 0 (the base alone).
        name: label used in result tables.

    After ``fit``: ``base_`` and ``interest_`` (the fitted parts), ``weight_``, ``base_params_``,
    ``val_by_weight_`` (validation metric per weight, higher = better: NDCG@10 or -RMSE),
    ``val_by_base_`` (the same per base candidate), ``user_index`` / ``item_index`` (the base's).
    """

    name = "blend"

    def __init__(
        self,
        task: str,
        make_base: Callable[[dict[str, Any]], Recommender],
        make_interest: Callable[[], Recommender],
        base_grid: Sequence[Mapping[str, Any]] = (),
        weights: Sequence[float] = BLEND_WEIGHTS,
        name: str | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        weights = tuple(float(w) for w in weights)
        if 0.0 not in weights or not all(0 <= w <= 1 for w in weights):
            raise ValueError(f"weights must lie in [0, 1] and contain 0 (the base alone), got {weights}")
        self.task = task
        self.make_base = make_base
        self.make_interest = make_interest
        self.base_grid = tuple(dict(p) for p in base_grid) or ({},)
        self.weights = weights
        self.settings: dict[str, Any] | None = None
        self.n_fallback_ = 0
        self.base_: Recommender | None = None
        self.interest_: Recommender | None = None
        if name:
            self.name = name

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """The task it was built for; text and order as the interest part reads them (once fitted)."""
        part = self.interest_.capabilities if self.interest_ is not None else Capabilities()
        return Capabilities(
            rating=self.task == "rating",
            ranking=self.task == "ranking",
            uses_text=part.uses_text,
            sequential=part.sequential,
            trains_with_torch=True,
        )

    # ------------------------------------------------------------------ refitting

    def refit_settings(self) -> dict[str, Any]:
        """What validation chose, JSON-able: ``weight``, ``base_params``, ``base_epochs``, ``interest_epochs``,
        ``val_metric`` (the chosen blend's validation score) and ``val_by_weight``.

        Raises:
            RuntimeError: not fitted.
        """
        self.check_fitted()
        return {
            "weight": self.weight_,
            "base_params": dict(self.base_params_),
            "base_epochs": _epochs(self.base_),
            "interest_epochs": _epochs(self.interest_),
            "val_metric": self.val_by_weight_.get(str(self.weight_)),
            "val_by_weight": dict(self.val_by_weight_),
        }

    def use_settings(self, settings: Mapping[str, Any]) -> BlendRecommender:
        """Fit with these choices (from :meth:`refit_settings`) instead of searching validation.

        Each torch part trains for its own epoch count with early stopping off; ``w`` and the base's
        parameters are kept. Returns self.
        """
        missing = {"weight", "base_params", "base_epochs", "interest_epochs"} - set(settings)
        if missing:
            raise ValueError(f"refit settings lack {sorted(missing)}")
        self.settings = dict(settings)
        return self

    # ------------------------------------------------------------------ fitting

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> BlendRecommender:
        """Fit the base and the interest model on ``train``; choose the base's parameters and ``w`` on ``val``.

        Args:
            train: training interactions.
            val: validation interactions (early stopping of each part, the base's parameters and ``w``);
                not needed after :meth:`use_settings`.
            **inputs: side inputs of the interest part (e.g. ``features=``).

        Raises:
            ValueError: no validation rows to choose on, and no fixed settings.
        """
        ratings = pd.to_numeric(train[RATING_COL], errors="coerce") if RATING_COL in train else pd.Series(dtype=float)
        self.bounds_ = (float(ratings.min()), float(ratings.max())) if ratings.notna().any() else (0.0, 1.0)
        if self.settings is not None:
            return self._fit_fixed(train, **inputs)
        scored = self._scored_val(val)
        if scored is None:
            raise ValueError(f"{self.name} chooses its weight on validation: pass val with rows, or use_settings()")
        self.val_by_base_: dict[str, float] = {}
        best: tuple[float, Recommender, dict[str, Any]] | None = None
        for params in self.base_grid:
            model = self.make_base(dict(params)).fit(train, val)
            score = self._metric(model, None, 0.0, train, scored)
            self.val_by_base_[repr(params)] = score
            if best is None or score > best[0]:
                best = (score, model, dict(params))
        _, self.base_, self.base_params_ = best
        self.interest_ = self.make_interest().fit(train, val, **inputs)
        self._align()
        self.val_by_weight_ = {str(w): self._metric(self.base_, self.interest_, w, train, scored) for w in self.weights}
        self.weight_ = max(self.weights, key=lambda w: (self.val_by_weight_[str(w)], -w))
        return self

    def _fit_fixed(self, train: pd.DataFrame, **inputs: Any) -> BlendRecommender:
        s = self.settings
        self.base_params_ = dict(s["base_params"])
        self.base_ = _fixed_epochs(self.make_base(dict(s["base_params"])), s["base_epochs"]).fit(train)
        self.interest_ = _fixed_epochs(self.make_interest(), s["interest_epochs"]).fit(train, None, **inputs)
        self._align()
        self.weight_ = float(s["weight"])
        self.val_by_weight_ = {str(k): v for k, v in (s.get("val_by_weight") or {}).items()}
        self.val_by_base_ = {}
        return self

    def _align(self) -> None:
        """The base's ids are the blend's; the interest model's item columns are reordered to match."""
        self.user_index = self.base_.user_index
        self.item_index = self.base_.item_index
        self._interest_cols = self.interest_.item_index.index_of(self.item_index.ids)
        if (self._interest_cols < 0).any():
            raise ValueError("the base and the interest model were fitted on different items")

    def _scored_val(self, val: pd.DataFrame | None) -> pd.DataFrame | None:
        """The validation rows the task scores (rated rows for ratings), or None when there are none."""
        if val is None or not len(val):
            return None
        if self.task == "rating":
            rated = val[pd.to_numeric(val[RATING_COL], errors="coerce").notna()] if RATING_COL in val else val.iloc[:0]
            return rated if len(rated) else None
        return val

    def _metric(
        self, base: Recommender, interest: Recommender | None, weight: float, train: pd.DataFrame, val: pd.DataFrame
    ) -> float:
        """Validation score of ``base`` blended with ``interest`` at ``weight`` (NDCG@10 or -RMSE; higher = better).

        The interest model scores validation as it will score test: at each user's validation time.
        """
        restore = self._score_at(interest, val)
        try:
            if self.task == "rating":
                truth = val[RATING_COL].to_numpy(dtype=np.float64)
                other = interest.predict(val) if interest is not None and weight else None
                return -rmse(truth, blend_ratings(base.predict(val), other, weight, self.bounds_))
            ids = base.user_index.ids

            def score(users: np.ndarray) -> np.ndarray:
                b = base.score_items(ids[users])
                if interest is None or weight == 0:
                    return b
                return blend_scores(b, interest.score_items(ids[users])[:, self._interest_cols], weight)

            return float(evaluate_ranking(score, train, val, base.user_index, base.item_index, ks=(10,))["ndcg@10"])
        finally:
            restore()

    @staticmethod
    def _score_at(model: Recommender | None, frame: pd.DataFrame) -> Callable[[], None]:
        """Set ``model``'s prediction times to ``frame``'s (time-safe text); returns the undo."""
        if model is None or not hasattr(model, "set_prediction_times"):
            return lambda: None
        kept = model.prediction_times_
        model.set_prediction_times(frame)

        def undo() -> None:
            model.prediction_times_ = kept

        return undo

    # ------------------------------------------------------------------ answering

    def check_fitted(self) -> None:
        """Raise RuntimeError when the blend has not been fitted."""
        if self.base_ is None or self.interest_ is None:
            raise RuntimeError(f"{self.name} is not fitted; call fit(train, val) first")

    def set_prediction_times(self, df: pd.DataFrame) -> BlendRecommender:
        """Pass each user's prediction time (earliest timestamp in ``df``) on to the parts that use one."""
        for part in (self.base_, self.interest_):
            if part is not None and hasattr(part, "set_prediction_times"):
                part.set_prediction_times(df)
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Blended ratings of the (user, item) rows of ``df`` (unknown users / items: the base's fallback)."""
        self.check_fitted()
        if self.task != "rating":
            raise ValueError(f"{self.name} was fitted for task={self.task!r}; predict() needs task='rating'")
        base = self.base_.predict(df)
        self.n_fallback_ = int(getattr(self.base_, "n_fallback_", 0))
        other = self.interest_.predict(df) if self.weight_ else None
        return blend_ratings(base, other, self.weight_, self.bounds_)

    def score_items(self, user_ids: Sequence[Any]) -> np.ndarray:
        """Blended scores ``(len(user_ids), len(self.item_index))`` of every training item, higher = better."""
        self.check_fitted()
        if self.task != "ranking":
            raise ValueError(f"{self.name} was fitted for task={self.task!r}; score_items() needs task='ranking'")
        base = self.base_.score_items(user_ids)
        if self.weight_ == 0:
            return base
        return blend_scores(base, self.interest_.score_items(user_ids)[:, self._interest_cols], self.weight_)
