"""ID-only collaborative-filtering models in torch, and the plumbing every torch recommender shares.

- :class:`MFRecommender`: global mean + user/item biases + a dot product of user and item
  embeddings (matrix factorisation); MSE for ratings, BPR for ranking.
- :class:`SequentialRecommender`: an LSTM over the item-ID embeddings of a user's training
  history, trained to predict the next item (full softmax); the ID-only counterpart of the
  text-aware :class:`~textinterest.models.interest.InterestRecommender`.

Both speak the baselines' interface: ``fit(train_df, val_df=None) -> self``,
``predict(df) -> ratings`` (rating task), ``score_items(user_ids) -> (n_users, n_items)`` in the
order of ``self.item_index``, and count unknown users/items in ``self.n_fallback_``.

Index 0 of every user/item embedding table is reserved for "unknown" (zero, never trained), so a
user or item absent from training gets the global mean / its bias terms only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from textinterest.constants import ITEM_COL, RATING_COL, TIME_COL, USER_COL
from textinterest.datasets.splits import order_key
from textinterest.evaluation import IdIndex, evaluate_ranking, rmse
from textinterest.training import Trainer, TrainConfig, TrainResult, set_seed

__all__ = [
    "UserSequences",
    "TorchRecommender",
    "MFConfig",
    "MatrixFactorization",
    "MFRecommender",
    "SeqConfig",
    "SequentialLSTM",
    "SequentialRecommender",
]

TASKS = ("rating", "ranking")


# --------------------------------------------------------------------------- user histories


class UserSequences:
    """Each training user's interactions in time order, as positions into sorted arrays.

    The order key is ``(timestamp, source_order)`` (see :func:`textinterest.datasets.splits.order_key`).
    ``self.rows[j]`` is the position in the original ``train`` frame of sorted interaction ``j``;
    user ``u`` owns sorted interactions ``starts[u] .. starts[u] + lengths[u] - 1``.

    Args:
        train: the training interactions.
        user_index: user ids -> 0..n_users-1 (every train user must be in it).
        item_index: item ids -> 0..n_items-1 (every train item must be in it).
    """

    def __init__(self, train: pd.DataFrame, user_index: IdIndex, item_index: IdIndex) -> None:
        users = user_index.index_of(train[USER_COL].to_numpy())
        items = item_index.index_of(train[ITEM_COL].to_numpy())
        if (users < 0).any() or (items < 0).any():
            raise ValueError("UserSequences: every training user and item must be in the id indices")
        rank = order_key(train)
        order = np.lexsort((rank, users))  # by user, then time
        self.rows = order.astype(np.int64)  # (n,) position in `train`
        self.user = users[order]  # (n,)
        self.item = items[order]  # (n,)
        rating = pd.to_numeric(train[RATING_COL], errors="coerce").to_numpy(dtype=np.float64) if RATING_COL in train else np.full(len(train), np.nan)
        self.rating = rating[order]  # (n,) NaN = unrated
        ts = train[TIME_COL].to_numpy(dtype=np.int64)[order]
        n_users = len(user_index)
        self.lengths = np.bincount(self.user, minlength=n_users).astype(np.int64)  # (U,)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)  # (U,)
        first = np.zeros(len(order), dtype=bool)
        first[self.starts[self.lengths > 0]] = True
        gap = np.diff(ts, prepend=ts[:1]).astype(np.float64) / 86400.0
        gap[first] = 0.0
        self.log_gap = np.log1p(np.clip(gap, 0.0, None)).astype(np.float32)  # (n,) log(1 + days since previous)
        self.n_users, self.n_items = n_users, len(item_index)

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, max_len: int) -> np.ndarray:
        """Training windows covering every interaction once as a target.

        A history longer than ``max_len`` is cut into windows of ``max_len`` steps with stride
        ``max_len // 2``; in every window but the first, only the second half are targets, so each
        target keeps at least ``max_len // 2`` steps of context.

        Returns:
            int64 array (n_windows, 4): user, start, end (exclusive), first target position
            (all in sorted-interaction coordinates).
        """
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2, got {max_len}")
        out = []
        half = max_len // 2
        for u in np.flatnonzero(self.lengths):
            s, n = int(self.starts[u]), int(self.lengths[u])
            if n <= max_len:
                out.append((u, s, s + n, s))
                continue
            out.append((u, s, s + max_len, s))
            covered = s + max_len
            while covered < s + n:
                end = min(covered + (max_len - half), s + n)
                out.append((u, end - max_len, end, covered))
                covered = end
        return np.asarray(out, dtype=np.int64).reshape(-1, 4)

    def last_window(self, users: np.ndarray, max_len: int) -> np.ndarray:
        """Windows holding the last ``max_len`` steps of each user (users < 0: empty).

        Returns:
            int64 array (B, 4) like :meth:`windows`, with the first target at ``end`` (no targets).
        """
        users = np.asarray(users, dtype=np.int64)
        known = users >= 0
        n = np.where(known, self.lengths[np.where(known, users, 0)], 0)
        end = np.where(known, self.starts[np.where(known, users, 0)], 0) + n
        start = end - np.minimum(n, max_len)
        return np.stack([users, start, end, end], axis=1)

    @staticmethod
    def pad(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right-padded positions of a batch of windows.

        Returns:
            pos (B, T) sorted-interaction positions (0 where padded), mask (B, T) valid steps,
            target (B, T) steps that are training targets. ``T >= 1``.
        """
        lengths = windows[:, 2] - windows[:, 1]
        t_max = max(int(lengths.max(initial=0)), 1)
        steps = np.arange(t_max)[None, :]  # (1, T)
        pos = windows[:, 1:2] + steps  # (B, T)
        mask = steps < lengths[:, None]
        target = mask & (pos >= windows[:, 3:4])
        return np.where(mask, pos, 0), mask, target

    def item_sets(self) -> list[np.ndarray]:
        """Each user's training items (sorted-interaction order)."""
        return [self.item[s : s + n] for s, n in zip(self.starts, self.lengths)]


def _seen_mask(seq: UserSequences, users: np.ndarray, n_items: int) -> np.ndarray:
    """(B, n_items) bool: items each user interacted with in training (users < 0: none)."""
    users = np.asarray(users, dtype=np.int64)
    known = users >= 0
    lens = np.where(known, seq.lengths[np.maximum(users, 0)], 0)
    starts = seq.starts[np.maximum(users, 0)]
    total = int(lens.sum())
    mask = np.zeros((len(users), n_items), dtype=bool)
    if total:
        row = np.repeat(np.arange(len(users)), lens)
        offset = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)  # position within each user
        mask[row, seq.item[np.repeat(starts, lens) + offset]] = True
    return mask


# --------------------------------------------------------------------------- shared recommender plumbing


class TorchRecommender:
    """Shared fit / predict / score_items logic of the torch recommenders.

    Subclasses implement ``_build(train)`` (returns the module), ``_batches(epoch, rng)``,
    ``_loss(module, batch)``, ``_predict_idx(users, items)`` and ``_score_idx(users)``; user and
    item positions passed to the last two are 0-based with -1 = unknown.

    Args:
        task: "rating" (MSE, early stopping on validation RMSE) or "ranking" (early stopping
            on validation NDCG@10 by full ranking).
        train_config: the :class:`TrainConfig`.
        eval_batch_size: users / rows scored per forward pass at prediction time.
    """

    name = "torch"
    supports_rating = True

    def __init__(self, task: str = "rating", train_config: TrainConfig | None = None, eval_batch_size: int = 512) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "rating" and not self.supports_rating:
            raise ValueError(f"{type(self).__name__} does not predict ratings; use task='ranking'")
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        self.task = task
        self.train_config = train_config or TrainConfig()
        self.eval_batch_size = eval_batch_size
        self.module: nn.Module | None = None
        self.n_fallback_ = 0
        self.train_result_: TrainResult | None = None

    # -- public API ---------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None) -> "TorchRecommender":
        """Train on ``train``; ``val`` (optional) drives early stopping.

        Args:
            train: training interactions (canonical columns).
            val: validation interactions; without it the model trains for ``epochs`` epochs.

        Returns:
            self
        """
        _check_frame(train, "train")
        if len(train) == 0:
            raise ValueError("cannot fit on an empty training table")
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
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ratings for the (user, item) rows of ``df``, clipped to the training range.

        Unknown users/items fall back to the bias terms (counted in ``self.n_fallback_``).
        """
        self._check_fitted()
        if self.task != "rating":
            raise ValueError(f"{type(self).__name__} was trained for task={self.task!r}; predict() needs task='rating'")
        _check_frame(df, "df", need_rating=False)
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
        self._check_fitted()
        users = self.user_index.index_of(np.asarray(user_ids, dtype=object))
        return self._score_users(users)

    # -- helpers ------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.module is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train) first")

    def _predict_rows(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.empty(len(users), dtype=np.float64)
        self.module.eval()
        with torch.no_grad():
            for s in range(0, len(users), self.eval_batch_size):
                out[s : s + self.eval_batch_size] = self._predict_idx(users[s : s + self.eval_batch_size], items[s : s + self.eval_batch_size])
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

    def _validator(self, val: pd.DataFrame):
        _check_frame(val, "val", need_rating=False)
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

    def _tensor(self, array: np.ndarray, dtype: torch.dtype = torch.long) -> torch.Tensor:
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


def _check_frame(df: pd.DataFrame, what: str, need_rating: bool = False) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    need = [USER_COL, ITEM_COL] + ([RATING_COL] if need_rating else [])
    if what == "train":
        need.append(TIME_COL)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _sample_negatives(rng: np.random.Generator, users: np.ndarray, seen: set[int], n_items: int, tries: int = 5) -> np.ndarray:
    """One item per user, uniformly among items the user did not interact with (approximately)."""
    neg = rng.integers(0, n_items, size=len(users))
    for _ in range(tries):
        clash = np.fromiter((int(u) * n_items + int(i) in seen for u, i in zip(users, neg)), dtype=bool, count=len(users))
        if not clash.any():
            break
        neg[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return neg


# --------------------------------------------------------------------------- matrix factorisation


@dataclass
class MFConfig:
    """Biased matrix factorisation (IDs only)."""

    n_users: int = 1  # users seen in training (index 0 of the tables is "unknown")
    n_items: int = 1  # items seen in training
    dim: int = 32  # latent dimension
    global_mean: float = 0.0  # mean training rating (rating task), added to every score
    l2: float = 1.0  # L2 penalty on all user/item embeddings (sum of squares, per training observation)
    bias_l2: float = 10.0  # L2 penalty on all user/item biases (same form; BaselineOnly-like shrinkage)
    init_std: float = 0.05  # std of the initial embeddings

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MFConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.l2 < 0 or self.bias_l2 < 0:
            raise ValueError(f"MFConfig.l2 and bias_l2 must be >= 0, got {self.l2}, {self.bias_l2}")


class MatrixFactorization(nn.Module):
    """score(u, i) = mu + b_u + b_i + p_u . q_i."""

    config_class = MFConfig

    def __init__(self, config: MFConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.user_bias = nn.Embedding(c.n_users + 1, 1, padding_idx=0)
        self.item_bias = nn.Embedding(c.n_items + 1, 1, padding_idx=0)
        self.user_emb = nn.Embedding(c.n_users + 1, c.dim, padding_idx=0)
        self.item_emb = nn.Embedding(c.n_items + 1, c.dim, padding_idx=0)
        for emb in (self.user_emb, self.item_emb):
            nn.init.normal_(emb.weight, std=c.init_std)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)
        with torch.no_grad():
            for emb in (self.user_emb, self.item_emb):
                emb.weight[0].zero_()

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users, items: (R,) indices with 0 = unknown -> (R,) scores."""
        p, q = self.user_emb(users), self.item_emb(items)  # (R, d)
        return self.config.global_mean + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0] + (p * q).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users: (B,) -> (B, n_items) scores of items 1..n_items."""
        p = self.user_emb(users)  # (B, d)
        q = self.item_emb.weight[1:]  # (N, d)
        return self.config.global_mean + self.user_bias(users) + self.item_bias.weight[1:, 0][None, :] + p @ q.T

    def penalty(self) -> torch.Tensor:
        """``bias_l2 * sum(b^2) + l2 * sum(p^2 + q^2)`` over all rows; divide by the number of observations."""
        c = self.config
        biases = self.user_bias.weight.pow(2).sum() + self.item_bias.weight.pow(2).sum()
        embs = self.user_emb.weight.pow(2).sum() + self.item_emb.weight.pow(2).sum()
        return c.bias_l2 * biases + c.l2 * embs


class MFRecommender(TorchRecommender):
    """ID-only matrix factorisation: MSE on ratings or BPR for ranking.

    Args:
        task: "rating" or "ranking".
        dim: latent dimension.
        l2: L2 penalty on the embeddings (sum of squares divided by the number of training
            observations); None: 5 for ratings, 1 for ranking.
        bias_l2: the same for the biases; None: 5 for ratings, 10 for ranking.
        train_config: :class:`TrainConfig` (batch_size counts interactions here).
        eval_batch_size: rows / users per forward pass at prediction time.
    """

    name = "mf"

    # (l2, bias_l2) per task, chosen on Musical Instruments validation data
    DEFAULT_REG = {"rating": (5.0, 5.0), "ranking": (1.0, 10.0)}

    def __init__(self, task: str = "rating", *, dim: int = 32, l2: float | None = None, bias_l2: float | None = None,
                 train_config: TrainConfig | None = None, eval_batch_size: int = 1024) -> None:
        super().__init__(task, train_config or TrainConfig(batch_size=256, lr=5e-3, patience=3, epochs=60), eval_batch_size)
        default_l2, default_bias = self.DEFAULT_REG[task]
        self.dim = dim
        self.l2 = default_l2 if l2 is None else l2
        self.bias_l2 = default_bias if bias_l2 is None else bias_l2

    def _build(self, train: pd.DataFrame) -> nn.Module:
        config = MFConfig(
            n_users=len(self.user_index), n_items=len(self.item_index), dim=self.dim,
            global_mean=self.global_mean_ if self.task == "rating" else 0.0, l2=self.l2, bias_l2=self.bias_l2,
        )
        rows = np.arange(len(self.seq)) if self.task == "ranking" else np.flatnonzero(np.isfinite(self.seq.rating))
        self._rows = rows
        self._penalty_scale = 1.0 / max(len(rows), 1)
        self._seen = set((self.seq.user.astype(np.int64) * config.n_items + self.seq.item).tolist())
        return MatrixFactorization(config)

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        order = rng.permutation(self._rows)
        bs = self.train_config.batch_size
        n_items = len(self.item_index)
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            batch = {"users": torch.as_tensor(self.seq.user[idx] + 1), "items": torch.as_tensor(self.seq.item[idx] + 1)}
            if self.task == "rating":
                batch["rating"] = torch.as_tensor(self.seq.rating[idx], dtype=torch.float32)
            else:
                batch["neg"] = torch.as_tensor(_sample_negatives(rng, self.seq.user[idx], self._seen, n_items) + 1)
            yield batch

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items = batch["users"], batch["items"]
        if self.task == "rating":
            pred = module(users, items).float()
            return F.mse_loss(pred, batch["rating"]) + self._penalty_scale * module.penalty()
        pos, neg = module(users, items).float(), module(users, batch["neg"]).float()
        return -F.logsigmoid(pos - neg).mean() + self._penalty_scale * module.penalty()

    def _predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.module(self._tensor(users + 1), self._tensor(items + 1)).float().cpu().numpy()

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        return self.module.score_all(self._tensor(users + 1)).float().cpu().numpy()

    def save(self, path: Any, *, metadata: dict | None = None) -> Any:
        """Save the fitted model to a folder (see :func:`textinterest.models.artifact.save_recommender`)."""
        from textinterest.models.artifact import save_recommender

        return save_recommender(self, path, metadata=metadata)

    @classmethod
    def load(cls, path: Any, *, device: str = "cpu") -> "MFRecommender":
        """Load a saved model (see :func:`textinterest.models.artifact.load_recommender`)."""
        from textinterest.models.artifact import load_recommender

        return load_recommender(path, device=device, expect=cls)

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-k items for a training user (see :func:`textinterest.recommend.recommend`)."""
        from textinterest.recommend import recommend

        return recommend(self, user_id, k, exclude_seen)

    def recommend_for_history(self, reviews: Any, k: int = 10, exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-k items for a new user's reviews (see :func:`textinterest.recommend.recommend_for_history`)."""
        from textinterest.recommend import recommend_for_history

        return recommend_for_history(self, reviews, k, exclude_seen)


# --------------------------------------------------------------------------- sequential LSTM (IDs only)


@dataclass
class SeqConfig:
    """Next-item LSTM over item-ID embeddings."""

    n_items: int = 1  # items seen in training (index 0 = padding / unknown)
    hidden: int = 64  # embedding and LSTM size
    dropout: float = 0.1  # dropout on the step inputs and states
    max_history: int = 50  # steps kept per user (the last ones)

    def __post_init__(self) -> None:
        for name in ("n_items", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SeqConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SeqConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.max_history < 2:
            raise ValueError(f"SeqConfig.max_history must be >= 2, got {self.max_history}")


class SequentialLSTM(nn.Module):
    """h_{t+1} = LSTM(h_t, e_{i_t}); score(i | prefix t) = h_t . e_i + b_i (h_0 learned)."""

    config_class = SeqConfig

    def __init__(self, config: SeqConfig) -> None:
        super().__init__()
        self.config = config
        H = config.hidden
        self.item_emb = nn.Embedding(config.n_items + 1, H, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.item_bias = nn.Parameter(torch.zeros(config.n_items))
        self.start = nn.Parameter(torch.zeros(H))  # state of an empty history
        self.lstm = nn.LSTM(H, H, batch_first=True)
        self.drop = nn.Dropout(config.dropout)

    def states(self, items: torch.Tensor) -> torch.Tensor:
        """items: (B, T) indices (0 = padding, right-padded) -> (B, T + 1, H) prefix states.

        State ``t`` summarises steps ``< t``; state 0 is the learned empty-history state.
        """
        x = self.drop(self.item_emb(items))  # (B, T, H)
        h, _ = self.lstm(x)  # (B, T, H), causal: padding on the right never reaches valid steps
        start = self.start.expand(items.shape[0], 1, -1)  # (B, 1, H)
        return self.drop(torch.cat([start, h], dim=1))  # (B, T+1, H)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """states (..., H) -> (..., n_items) scores of items 1..n_items."""
        return states @ self.item_emb.weight[1:].T + self.item_bias


class SequentialRecommender(TorchRecommender):
    """ID-only sequential baseline: LSTM over the history's item embeddings, next-item softmax.

    Items a user already has in training (other than the target) are left out of the softmax,
    matching full-ranking evaluation, which excludes them.

    Args:
        hidden: embedding / LSTM size.
        dropout: dropout rate.
        max_history: steps kept per user.
        train_config: :class:`TrainConfig` (batch_size counts users' windows).
    """

    name = "seq-lstm"
    supports_rating = False

    def __init__(self, task: str = "ranking", *, hidden: int = 64, dropout: float = 0.1, max_history: int = 50, train_config: TrainConfig | None = None, eval_batch_size: int = 512) -> None:
        super().__init__(task, train_config or TrainConfig(batch_size=64, lr=3e-3, patience=3, epochs=40), eval_batch_size)
        self.hidden, self.dropout, self.max_history = hidden, dropout, max_history

    def _build(self, train: pd.DataFrame) -> nn.Module:
        self._windows = self.seq.windows(self.max_history)
        return SequentialLSTM(SeqConfig(n_items=len(self.item_index), hidden=self.hidden, dropout=self.dropout, max_history=self.max_history))

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        order = rng.permutation(len(self._windows))
        bs = self.train_config.batch_size
        n_items = len(self.item_index)
        for s in range(0, len(order), bs):
            win = self._windows[order[s : s + bs]]
            pos, mask, target = self.seq.pad(win)
            yield {
                "items": torch.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0)),  # (B, T)
                "target": torch.as_tensor(target),  # (B, T)
                "seen": torch.as_tensor(_seen_mask(self.seq, win[:, 0], n_items)),  # (B, N)
            }

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = module.states(batch["items"])[:, :-1]  # (B, T, H): state before each step
        b, t = batch["target"].nonzero(as_tuple=True)  # (R,)
        logits = module.logits(states[b, t]).float()  # (R, N)
        label = batch["items"][b, t] - 1  # (R,)
        other_seen = batch["seen"][b].clone()  # (R, N)
        other_seen[torch.arange(len(label), device=label.device), label] = False
        logits = logits.masked_fill(other_seen, -1e9)
        return F.cross_entropy(logits, label)

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        win = self.seq.last_window(users, self.max_history)
        pos, mask, _ = self.seq.pad(win)
        items = self._tensor(np.where(mask, self.seq.item[pos] + 1, 0))
        states = self.module.states(items)  # (B, T+1, H)
        last = states[torch.arange(len(win), device=self.device), self._tensor(mask.sum(1))]  # (B, H)
        return self.module.logits(last).float().cpu().numpy()

    def save(self, path: Any, *, metadata: dict | None = None) -> Any:
        """Save the fitted model to a folder (see :func:`textinterest.models.artifact.save_recommender`)."""
        from textinterest.models.artifact import save_recommender

        return save_recommender(self, path, metadata=metadata)

    @classmethod
    def load(cls, path: Any, *, device: str = "cpu") -> "SequentialRecommender":
        """Load a saved model (see :func:`textinterest.models.artifact.load_recommender`)."""
        from textinterest.models.artifact import load_recommender

        return load_recommender(path, device=device, expect=cls)

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-k items for a training user (see :func:`textinterest.recommend.recommend`)."""
        from textinterest.recommend import recommend

        return recommend(self, user_id, k, exclude_seen)

    def recommend_for_history(self, reviews: Any, k: int = 10, exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-k items for a new user's reviews (see :func:`textinterest.recommend.recommend_for_history`)."""
        from textinterest.recommend import recommend_for_history

        return recommend_for_history(self, reviews, k, exclude_seen)
