"""A text-aware SASRec: each item's vector is its ID embedding plus a learned projection of its text.

The item text is the one the interest model reads, and it is time-safe in the same way
(:class:`~textinterest.models.item_text.ItemTextHistory`): item ``i``'s text at time ``t`` averages
only the item's *training* reviews written strictly before ``t`` (an item without one gets the
mean of all earlier reviews; an item with a metadata text vector keeps that vector). So

- a history step reads its item's text at the step's own time;
- a candidate is scored with its text at the prediction time: the target's time in training, the
  user's test (or validation) time when scoring. Training examples of one batch are put into at
  most ``TIME_GROUPS`` groups by target time, and a group's candidates read the text before the
  group's *earliest* target time (never later than any member's own time); scoring is exact, one
  item table per distinct prediction time.

Everything else (blocks, every-prefix examples, loss, recipe) is :class:`~textinterest.models.
peers.sequential.SASRecRecommender`'s, so a comparison of the two measures what the text adds to
the transformer alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from textinterest.constants import ITEM_COL, TIME_COL, USER_COL
from textinterest.models.item_text import ItemTextHistory
from textinterest.models.peers.sequential import INIT_STD, NextItemConfig, SASRec, SASRecRecommender
from textinterest.training import TrainConfig

__all__ = ["TextSASRec", "SASRecTextRecommender", "TIME_GROUPS"]

TIME_GROUPS = 8  # candidate text tables per training batch (one per group of target times)


class TextSASRec(SASRec):
    """SASRec whose item vectors are ``e_i + W x_i(t)``: ID embedding plus projected text (D -> H)."""

    def __init__(self, config: NextItemConfig, text_dim: int) -> None:
        super().__init__(config)
        self.text_proj = nn.Linear(text_dim, config.hidden, bias=False)
        nn.init.normal_(self.text_proj.weight, std=INIT_STD)

    def step_extra(self, extra: torch.Tensor) -> torch.Tensor:
        """(..., D) the item text of each step -> (..., H) its projection, added to the item embedding."""
        return self.text_proj(extra)

    def candidates(self, text: torch.Tensor) -> torch.Tensor:
        """(..., n_items, D) item text -> (..., n_items, H) candidate vectors of items 1..n_items."""
        return self.item_emb.weight[1:] + self.text_proj(text)


class SASRecTextRecommender(SASRecRecommender):
    """SASRec with time-safe item text (ranking only); arguments as :class:`SASRecRecommender`, plus:

    Args:
        vectors: (len(train), D) review vectors of the training rows the model is fitted on
            (``TextFeatures.review_vectors``).
        item_ids: ids of items with a metadata text vector (optional).
        item_vectors: (len(item_ids), D) their vectors.
    """

    name = "sasrec-text"

    def __init__(
        self,
        task: str = "ranking",
        *,
        vectors: np.ndarray,
        item_ids: Any = None,
        item_vectors: np.ndarray | None = None,
        train_config: TrainConfig | None = None,
        **shape: Any,
    ) -> None:
        if shape.get("loss", "ce") != "ce" or shape.get("examples", "prefix") != "prefix":
            raise ValueError("sasrec-text trains with loss='ce' on every prefix (examples='prefix') only")
        super().__init__(task, train_config=train_config, **shape)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must have shape (n_rows, D), got {self.vectors.shape}")
        if (item_ids is None) != (item_vectors is None):
            raise ValueError("item_ids and item_vectors must be given together")
        self.item_ids, self.item_vectors = item_ids, item_vectors
        self.prediction_times_: dict[Any, int] = {}

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> SASRecTextRecommender:
        """Train on ``train`` (aligned with ``vectors``); validation users are scored at their validation time."""
        if len(train) != len(self.vectors):
            raise ValueError(f"vectors has {len(self.vectors)} rows for {len(train)} training rows")
        self.prediction_times_ = {} if val is None or not len(val) else _first_times(val)
        return super().fit(train, val, **inputs)

    def _build(self, train: pd.DataFrame) -> nn.Module:
        self._text = self._text_history(self.vectors, train)
        times = train[TIME_COL].to_numpy(dtype=np.int64)[self.seq.rows]
        self._set_step_text(times)
        return super()._build(train)

    def _text_history(self, vectors: np.ndarray, train: pd.DataFrame) -> ItemTextHistory:
        """The time-safe item text of ``train``'s reviews (``vectors`` aligned with its rows)."""
        n_items = len(self.item_index)
        review = vectors[self.seq.rows]  # (n, D) in sorted order
        times = train[TIME_COL].to_numpy(dtype=np.int64)[self.seq.rows]
        fixed = np.zeros(n_items, bool)
        fixed_vectors = np.zeros((n_items, review.shape[1]), np.float32)
        if self.item_vectors is not None:  # metadata text: the same at every time
            pos = self.item_index.index_of(np.asarray(self.item_ids, dtype=object))
            ok = pos >= 0
            fixed[pos[ok]] = True
            fixed_vectors[pos[ok]] = np.asarray(self.item_vectors, np.float32)[ok]
        return ItemTextHistory(review, self.seq.item, times, n_items, fixed, fixed_vectors)

    def _make_module(self, config: NextItemConfig) -> nn.Module:
        return TextSASRec(config, self.vectors.shape[1])

    def _set_step_text(self, times: np.ndarray) -> None:
        """Each history step's item text at the step's own time, and the times, for ``self.seq``."""
        self._times = times
        self._step_text = self._text.mean_before(self.seq.item, times)  # (n, D)

    def set_history(self, history: pd.DataFrame) -> SASRecTextRecommender:
        """Score from the histories in ``history`` (see :class:`~textinterest.models.sequences.HistoryUpdate`);
        the text of every step still comes from the training reviews only."""
        super().set_history(history)
        users = self.user_index.index_of(history[USER_COL].to_numpy())
        items = self.item_index.index_of(history[ITEM_COL].to_numpy())
        kept = history[(users >= 0) & (items >= 0)]
        self._set_step_text(kept[TIME_COL].to_numpy(dtype=np.int64)[self.seq.rows])
        return self

    def set_prediction_times(self, df: pd.DataFrame) -> SASRecTextRecommender:
        """Score each user of ``df`` with item text from before the user's earliest time in ``df``."""
        self.prediction_times_ = _first_times(df)
        return self

    def _batch(self, examples: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        # examples sorted by target time, so that each time group is a contiguous run of the batch
        examples = examples[np.argsort(self._times[examples[:, 2]], kind="stable")]
        batch = super()._batch(examples, rng)
        pos, mask, _ = self.seq.pad(examples)
        batch["text"] = torch.as_tensor(self._step_text[pos] * mask[..., None])  # (B, T, D)
        when = self._times[examples[:, 2]]  # (B,) ascending target times
        bounds = np.linspace(0, len(examples), min(TIME_GROUPS, len(examples)) + 1).astype(np.int64)
        cuts = when[bounds[:-1]]  # (G,) each group's earliest target time
        n_items = len(self.item_index)
        table = self._text.mean_before(np.tile(np.arange(n_items), len(cuts)), np.repeat(cuts, n_items))
        batch["cand_text"] = torch.as_tensor(table.reshape(len(cuts), n_items, -1))  # (G, N, D)
        batch["group_size"] = torch.as_tensor(np.diff(bounds))  # (G,)
        return batch

    def _forward(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return module(batch["items"], extra=batch["text"])

    def _last_states(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._states_at_end(module, batch["items"], batch["last"] + 1, batch["text"])

    def _train_logits(
        self, module: nn.Module, h: torch.Tensor, rows: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        # prefix examples: one target per example, so h follows the batch order (contiguous groups)
        cands = module.candidates(batch["cand_text"])  # (G, N, H)
        parts = torch.split(h, batch["group_size"].tolist())
        return torch.cat([part @ cand.T for part, cand in zip(parts, cands)])

    # -- scoring ---------------------------------------------------------------------------------

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        win = self.seq.last_window(users, self.shape["max_len"])
        pos, mask, _ = self.seq.pad(win)
        items = self.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0))
        text = self.as_tensor(self._step_text[pos] * mask[..., None], torch.float32)
        h = self._states_at_end(self.module, items, self.as_tensor(mask.sum(1)), text)  # (B, H)
        # each user's candidates carry their text at the user's prediction time (all training reviews if none)
        ids = self.user_index.ids[np.maximum(users, 0)]
        never = np.iinfo(np.int64).max // 4
        when = np.array([self.prediction_times_.get(u, never) if k >= 0 else never for u, k in zip(ids, users)])
        projected = self._text.projected(self.module.text_proj.weight.detach().cpu().numpy())
        everything = np.arange(len(self.item_index))
        out = np.empty((len(users), len(everything)), np.float32)
        ids_emb = self.module.item_emb.weight[1:]
        for t in np.unique(when):
            q = np.flatnonzero(when == t)
            cand = ids_emb + self.as_tensor(projected.mean_before(everything, int(t)), torch.float32)  # (N, H)
            out[q] = (h[self.as_tensor(q)] @ cand.T).float().cpu().numpy()
        return out


def _first_times(df: pd.DataFrame) -> dict[Any, int]:
    return df.groupby(USER_COL, sort=False)[TIME_COL].min().astype(np.int64).to_dict()
