"""ID-only collaborative-filtering models in torch.

- :class:`MFRecommender`: global mean + user/item biases + a dot product of user and item
  embeddings (matrix factorisation); MSE for ratings, BPR for ranking.
- :class:`SequentialRecommender`: an LSTM over the item-ID embeddings of a user's training
  history, trained to predict the next item (full softmax); the ID-only counterpart of the
  text-aware :class:`~textinterest.models.interest.InterestRecommender`.

Both implement :class:`~textinterest.models.base.Recommender` through
:class:`~textinterest.models.torch_base.TorchRecommender`: ``fit(train_df, val_df=None) -> self``,
``predict(df) -> ratings`` (rating task), ``score_items(user_ids) -> (n_users, n_items)`` in the
order of ``self.item_index``, and count unknown users/items in ``self.n_fallback_``.
``UserSequences`` and ``TorchRecommender`` are re-exported here for existing imports.

Index 0 of every user/item embedding table is reserved for "unknown" (zero, never trained), so a
user or item absent from training gets the global mean / its bias terms only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from textinterest.models.base import Capabilities
from textinterest.models.sequences import (
    HistoryUpdate,
    UserSequences,
    check_positive,
    sample_negatives,
    seen_codes,
    seen_mask,
    shuffled_batches,
)
from textinterest.models.torch_base import TorchRecommender
from textinterest.training import TrainConfig

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
        check_positive(self, ("n_users", "n_items", "dim"))
        if self.l2 < 0 or self.bias_l2 < 0:
            raise ValueError(f"MFConfig.l2 and bias_l2 must be >= 0, got {self.l2}, {self.bias_l2}")


class MatrixFactorization(nn.Module):
    """score(u, i) = mu + b_u + b_i + p_u . q_i."""

    config_class = MFConfig

    def __init__(self, config: MFConfig) -> None:
        super().__init__()
        self.config = c = config
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
        train_config: :class:`TrainConfig` (batch_size counts interactions here); None: the registered
            default of "mf" (:mod:`textinterest.models.registry`).
        eval_batch_size: rows / users per forward pass at prediction time.
    """

    name = "mf"
    artifact_kind = "mf"
    capabilities = Capabilities(rating=True, ranking=True, trains_with_torch=True)

    # (l2, bias_l2) per task, chosen on Musical Instruments validation data
    DEFAULT_REG = {"rating": (5.0, 5.0), "ranking": (1.0, 10.0)}

    def __init__(
        self,
        task: str = "rating",
        *,
        dim: int = 32,
        l2: float | None = None,
        bias_l2: float | None = None,
        train_config: TrainConfig | None = None,
        eval_batch_size: int = 1024,
    ) -> None:
        super().__init__(task, train_config, eval_batch_size)
        default_l2, default_bias = self.DEFAULT_REG[task]
        self.dim = dim
        self.l2 = default_l2 if l2 is None else l2
        self.bias_l2 = default_bias if bias_l2 is None else bias_l2

    def saved_settings(self) -> dict[str, Any]:
        """``dim``, ``l2`` and ``bias_l2``: what :meth:`from_saved` needs to rebuild the model."""
        return {"dim": self.dim, "l2": self.l2, "bias_l2": self.bias_l2}

    def _build(self, train: pd.DataFrame) -> nn.Module:
        config = MFConfig(
            n_users=len(self.user_index),
            n_items=len(self.item_index),
            dim=self.dim,
            global_mean=self.global_mean_ if self.task == "rating" else 0.0,
            l2=self.l2,
            bias_l2=self.bias_l2,
        )
        rows = np.arange(len(self.seq)) if self.task == "ranking" else np.flatnonzero(np.isfinite(self.seq.rating))
        self._rows = rows
        self._penalty_scale = 1.0 / max(len(rows), 1)
        self._seen = seen_codes(self.seq)
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
                batch["neg"] = torch.as_tensor(sample_negatives(rng, self.seq.user[idx], self._seen, n_items) + 1)
            yield batch

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        users, items = batch["users"], batch["items"]
        if self.task == "rating":
            pred = module(users, items).float()
            return F.mse_loss(pred, batch["rating"]) + self._penalty_scale * module.penalty()
        pos, neg = module(users, items).float(), module(users, batch["neg"]).float()
        return -F.logsigmoid(pos - neg).mean() + self._penalty_scale * module.penalty()

    def _predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.module(self.as_tensor(users + 1), self.as_tensor(items + 1)).float().cpu().numpy()

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        return self.module.score_all(self.as_tensor(users + 1)).float().cpu().numpy()


# --------------------------------------------------------------------------- sequential LSTM (IDs only)


@dataclass
class SeqConfig:
    """Next-item LSTM over item-ID embeddings."""

    n_items: int = 1  # items seen in training (index 0 = padding / unknown)
    hidden: int = 64  # embedding and LSTM size
    dropout: float = 0.1  # dropout on the step inputs and states
    max_history: int = 50  # steps kept per user (the last ones)

    def __post_init__(self) -> None:
        check_positive(self, ("n_items", "hidden"))
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


class SequentialRecommender(HistoryUpdate, TorchRecommender):
    """ID-only sequential baseline: LSTM over the history's item embeddings, next-item softmax.

    Items a user already has in training (other than the target) are left out of the softmax,
    matching full-ranking evaluation, which excludes them.

    Args:
        hidden: embedding / LSTM size.
        dropout: dropout rate.
        max_history: steps kept per user.
        refit: under ``val-in-history``, refit on train + validation for the epochs early stopping
            chose (True, the default), or score the early-stopped fit with the validation item added
            to the history (False).
        train_config: :class:`TrainConfig` (batch_size counts users' windows); None: the registered
            default of "seq-lstm".
        eval_batch_size: users per forward pass at prediction time.
    """

    name = "seq-lstm"
    artifact_kind = "seq-lstm"
    capabilities = Capabilities(rating=False, ranking=True, sequential=True, trains_with_torch=True)

    def __init__(
        self,
        task: str = "ranking",
        *,
        hidden: int = 64,
        dropout: float = 0.1,
        max_history: int = 50,
        refit: bool = True,
        train_config: TrainConfig | None = None,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__(task, train_config, eval_batch_size)
        self.hidden, self.dropout, self.max_history = hidden, dropout, max_history
        self.refit_for_test = bool(refit)

    def saved_settings(self) -> dict[str, Any]:
        """``hidden``, ``dropout`` and ``max_history``: what :meth:`from_saved` needs to rebuild the model."""
        return {"hidden": self.hidden, "dropout": self.dropout, "max_history": self.max_history}

    def _build(self, train: pd.DataFrame) -> nn.Module:
        self._windows = self.seq.windows(self.max_history)
        return SequentialLSTM(
            SeqConfig(
                n_items=len(self.item_index), hidden=self.hidden, dropout=self.dropout, max_history=self.max_history
            )
        )

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        n_items = len(self.item_index)
        for win in shuffled_batches(self._windows, self.train_config.batch_size, rng):
            pos, mask, target = self.seq.pad(win)
            yield {
                "items": torch.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0)),  # (B, T)
                "target": torch.as_tensor(target),  # (B, T)
                "seen": torch.as_tensor(seen_mask(self.seq, win[:, 0], n_items)),  # (B, N)
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
        items = self.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0))
        states = self.module.states(items)  # (B, T+1, H)
        last = states[torch.arange(len(win), device=self.device), self.as_tensor(mask.sum(1))]  # (B, H)
        return self.module.logits(last).float().cpu().numpy()
