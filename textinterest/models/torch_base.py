"""The plumbing every torch recommender shares: :class:`TorchRecommender`.

A subclass supplies the module and its loss; this class handles id indexing, per-user histories
(:class:`~textinterest.models.sequences.UserSequences`), training through
:class:`~textinterest.training.Trainer` with early stopping on validation RMSE (rating task) or
NDCG@10 (ranking task), batched prediction and full-item scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from textinterest.constants import ITEM_COL, RATING_COL, USER_COL
from textinterest.evaluation import IdIndex, evaluate_ranking, rmse
from textinterest.models import fit_memo
from textinterest.models.base import TASKS, Capabilities, Recommender
from textinterest.models.sequences import UserSequences, check_frame
from textinterest.models.train_defaults import TRAIN_DEFAULTS
from textinterest.training import TrainConfig, Trainer, TrainResult, set_seed

__all__ = ["TorchRecommender"]


class TorchRecommender(Recommender):
    """Shared fit / predict / score_items logic of the torch recommenders.

    Subclasses implement ``_build(train)`` (returns the module), ``_batches(epoch, rng)``,
    ``_loss(module, batch)``, ``_predict_idx(users, items)`` and ``_score_idx(users)``; user and
    item positions passed to the last two are 0-based with -1 = unknown. A subclass that cannot
    predict ratings declares ``capabilities = Capabilities(rating=False, ...)``.

    Args:
        task: "rating" (MSE, early stopping on validation RMSE) or "ranking" (early stopping
            on validation NDCG@10 by full ranking).
        train_config: the :class:`TrainConfig`; None: the default registered for the class's
            ``name`` in :mod:`textinterest.models.registry` (plain ``TrainConfig()`` if none is).
        eval_batch_size: users / rows scored per forward pass at prediction time.
    """

    name = "torch"
    capabilities = Capabilities(rating=True, ranking=True, trains_with_torch=True)
    #: the kind a saved model of this class records and is loaded back as (None: cannot be saved)
    artifact_kind: ClassVar[str | None] = None

    def __init__(
        self, task: str = "rating", train_config: TrainConfig | None = None, eval_batch_size: int = 512
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if not self.capabilities.serves(task):
            raise ValueError(f"{type(self).__name__} does not serve task={task!r}; use task='ranking'")
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        self.task = task
        self.train_config = train_config or _default_train_config(type(self).name)
        self.eval_batch_size = eval_batch_size
        self.module: nn.Module | None = None
        self.n_fallback_ = 0
        self.train_result_: TrainResult | None = None

    # -- public API ---------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> TorchRecommender:
        """Train on ``train``; ``val`` (optional) drives early stopping.

        Args:
            train: training interactions (canonical columns).
            val: validation interactions; without it the model trains for ``epochs`` epochs.
            **inputs: side information; the ID-only models take none.

        Returns:
            self
        """
        if inputs:
            raise TypeError(f"{type(self).__name__}.fit takes no side inputs, got {sorted(inputs)}")
        check_frame(train, "train")
        if len(train) == 0:
            raise ValueError("cannot fit on an empty training table")
        memo = fit_memo.current()
        key = memo.key(self, train, val) if memo is not None else None
        if key is not None and (state := memo.load(key)) is not None:
            self.__dict__.update(state)  # the same settings, seed and rows were fitted before in this run
            return self
        try:
            self._fit(train, val)
        except BaseException:
            if key is not None:
                memo.release(key)
            raise
        if key is not None:
            memo.store(key, vars(self))
        return self

    def _fit(self, train: pd.DataFrame, val: pd.DataFrame | None) -> None:
        self.user_index = IdIndex(train[USER_COL].to_numpy())
        self.item_index = IdIndex(train[ITEM_COL].to_numpy())
        self.seq = UserSequences(train, self.user_index, self.item_index)
        ratings = self.seq.rating[np.isfinite(self.seq.rating)]
        if self.task == "rating" and ratings.size == 0:
            raise ValueError("task='rating' needs rated training rows; every rating is NaN")
        self.global_mean_ = float(ratings.mean()) if ratings.size else 0.0
        self.rating_range_ = (float(ratings.min()), float(ratings.max())) if ratings.size else (0.0, 1.0)
        self._train_df = train
        trainer = Trainer(self.train_config)
        self.device = trainer.device
        set_seed(self.train_config.seed)  # the initial weights depend on the seed too
        self.module = self._build(train)
        validate = self._validator(val) if val is not None and len(val) else None
        self.train_result_ = trainer.fit(self.module, self._batches, self._loss, validate, maximize=True)
        self.module.eval()

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ratings for the (user, item) rows of ``df``, clipped to the training range.

        Unknown users/items fall back to the bias terms (counted in ``self.n_fallback_``).
        """
        self.check_fitted()
        if self.task != "rating":
            raise ValueError(f"{type(self).__name__} was trained for task={self.task!r}; predict() needs task='rating'")
        check_frame(df, "df", need_rating=False)
        users = self.user_index.index_of(df[USER_COL].to_numpy())
        items = self.item_index.index_of(df[ITEM_COL].to_numpy())
        self.n_fallback_ = int(((users < 0) | (items < 0)).sum())
        return self._predict_rows(users, items)

    def score_items(self, user_ids: Sequence[Any]) -> np.ndarray:
        """Scores of every item of ``self.item_index`` for each user (higher = better).

        Args:
            user_ids: raw user ids; unknown users are scored from the bias terms / empty history.

        Returns:
            float32 array (len(user_ids), n_items).
        """
        self.check_fitted()
        users = self.user_index.index_of(np.asarray(user_ids, dtype=object))
        return self._score_users(users)

    # -- saving, loading and asking ------------------------------------------------------------

    def save(
        self, path: Any, *, encoder: Any = None, sentiment: Any = None, metadata: dict[str, Any] | None = None
    ) -> Path:
        """Save the fitted model to a folder (see :func:`textinterest.models.artifact.save_recommender`)."""
        from textinterest.models.artifact import save_recommender

        return save_recommender(self, path, encoder=encoder, sentiment=sentiment, metadata=metadata)

    @classmethod
    def load(cls, path: Any, *, encoder: Any = None, device: str = "cpu") -> TorchRecommender:
        """Load a model of this class saved by :meth:`save` (see :func:`.artifact.load_recommender`)."""
        from textinterest.models.artifact import load_recommender

        return load_recommender(path, cls, encoder=encoder, device=device)

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True, **kwargs: Any) -> list[dict[str, Any]]:
        """Top-k items for a training user (see :func:`textinterest.models.recommend.recommend`)."""
        from textinterest.models.recommend import recommend

        return recommend(self, user_id, k, exclude_seen, **kwargs)

    def recommend_for_history(
        self, reviews: Any, k: int = 10, exclude_seen: bool = True, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Top-k items for a new user's reviews (see :func:`textinterest.models.recommend.recommend_for_history`)."""
        from textinterest.models.recommend import recommend_for_history

        return recommend_for_history(self, reviews, k, exclude_seen, **kwargs)

    def saved_settings(self) -> dict[str, Any]:
        """The constructor settings a saved model records (JSON-able); :meth:`from_saved` reads them back."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    @classmethod
    def from_saved(
        cls,
        settings: dict[str, Any],
        *,
        task: str,
        train_config: TrainConfig,
        eval_batch_size: int,
        name: Any = None,
        own_settings: dict[str, Any] | None = None,
    ) -> TorchRecommender:
        """An unfitted model built from :meth:`saved_settings` (the weights are loaded afterwards).

        ``own_settings`` are those :meth:`artifact_state` returned when the model was saved.
        """
        return cls(task, **settings, train_config=train_config, eval_batch_size=eval_batch_size)

    def artifact_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
        """The weights a saved model writes, and settings of its own beyond :meth:`saved_settings` (None)."""
        return self.module.state_dict(), None

    def load_artifact_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`artifact_state` wrote into the freshly built module (strictly)."""
        self.module.load_state_dict(state)

    def restore_fitted(
        self,
        train: pd.DataFrame,
        users: IdIndex,
        items: IdIndex,
        *,
        global_mean: float,
        rating_range: tuple[float, float],
        device: torch.device,
        train_result: TrainResult | None = None,
    ) -> None:
        """Rebuild the state :meth:`fit` leaves behind from saved histories, without training.

        ``train`` must hold the histories in (user, time) order; the module is built with fresh
        weights, which the caller then replaces by the saved ones.

        Raises:
            ValueError: the histories are not in (user, time) order.
        """
        self.user_index, self.item_index = users, items
        self.seq = UserSequences(train, users, items)
        if not np.array_equal(self.seq.rows, np.arange(len(train))):
            raise ValueError("the saved histories are not in (user, time) order")
        self.global_mean_ = float(global_mean)
        self.rating_range_ = (float(rating_range[0]), float(rating_range[1]))
        self._train_df = train
        self.device = device
        self.module = self._module_for_saved_weights(train).to(device)
        self.train_result_ = train_result

    @property
    def training_frame(self) -> pd.DataFrame:
        """The training interactions the model was fitted on (rows in the order ``seq.rows`` indexes)."""
        self.check_fitted()
        return self._train_df

    def training_batches(self, epoch: int = 0, seed: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """The batches one training epoch draws (on the CPU), to inspect them or recompute the loss by hand.

        Args:
            epoch: the epoch number given to the batch builder.
            seed: seed of the shuffling; None: the training seed.
        """
        self.check_fitted()
        rng = np.random.default_rng(self.train_config.seed if seed is None else seed)
        return self._batches(epoch, rng)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch of :meth:`training_batches` with the fitted weights: a scalar tensor.

        Computed in eval mode (no dropout) and without gradients; otherwise exactly the loss the trainer
        minimises.
        """
        self.check_fitted()
        self.module.eval()
        with torch.no_grad():
            return self._loss(self.module, {k: v.to(self.device) for k, v in batch.items()})

    # -- helpers ------------------------------------------------------------------------------

    def check_fitted(self) -> None:
        """Raise RuntimeError when the model has not been fitted (or loaded) yet."""
        if self.module is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train) first")

    def _module_for_saved_weights(self, train: pd.DataFrame) -> nn.Module:
        return self._build(train)

    def _predict_rows(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.empty(len(users), dtype=np.float64)
        self.module.eval()
        with torch.no_grad():
            for s in range(0, len(users), self.eval_batch_size):
                out[s : s + self.eval_batch_size] = self._predict_idx(
                    users[s : s + self.eval_batch_size], items[s : s + self.eval_batch_size]
                )
        lo, hi = self.rating_range_
        return np.clip(out, lo, hi)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), len(self.item_index)), dtype=np.float32)
        self.module.eval()
        with torch.no_grad():
            for s in range(0, len(users), self.eval_batch_size):
                out[s : s + self.eval_batch_size] = self._score_idx(users[s : s + self.eval_batch_size])
        return out

    def _validator(self, val: pd.DataFrame) -> Callable[[nn.Module], float] | None:
        check_frame(val, "val", need_rating=False)
        if self.task == "rating":
            rated = val[pd.to_numeric(val[RATING_COL], errors="coerce").notna()] if RATING_COL in val else val.iloc[:0]
            if len(rated) == 0:
                return None
            users = self.user_index.index_of(rated[USER_COL].to_numpy())
            items = self.item_index.index_of(rated[ITEM_COL].to_numpy())
            truth = rated[RATING_COL].to_numpy(dtype=np.float64)
            return lambda module: -rmse(truth, self._predict_rows(users, items))
        train = self._train_df
        return lambda module: evaluate_ranking(
            self._score_users, train, val, self.user_index, self.item_index, ks=(10,), batch_size=self.eval_batch_size
        )["ndcg@10"]

    def as_tensor(self, array: Any, dtype: torch.dtype = torch.long) -> torch.Tensor:
        """``array`` as a tensor on the model's device (positions by default)."""
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    # -- to implement -------------------------------------------------------------------------

    def _build(self, train: pd.DataFrame) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:  # pragma: no cover
        raise NotImplementedError

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _score_idx(self, users: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


def _default_train_config(name: str) -> TrainConfig:
    return TrainConfig(**TRAIN_DEFAULTS[name]) if name in TRAIN_DEFAULTS else TrainConfig()
