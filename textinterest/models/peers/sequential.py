"""Next-item peers of the field, written compactly in torch: SASRec and GRU4Rec.

Both read a user's training items in time order and score the whole catalogue for the next step;
they speak the house interface through :class:`~textinterest.models.cf.TorchRecommender`
(``fit(train, val=None)``, ``score_items(user_ids)``, early stopping on validation NDCG@10).

- **SASRec** (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): item
  embeddings scaled by ``sqrt(d)`` plus learned positional embeddings, ``n_layers`` blocks of
  pre-LayerNorm causal multi-head self-attention and a point-wise feed-forward net, each with a
  residual connection and dropout, a final LayerNorm; the score of item ``i`` after step ``t`` is
  ``h_t . e_i`` (input and output embeddings shared).
- **GRU4Rec** (Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks",
  ICLR 2016), in the full-softmax form RecBole and later re-evaluations use: item embedding ->
  dropout -> GRU -> linear map back to the embedding size; score ``h_t . e_i``.

Loss: cross-entropy over the full catalogue at every step (``loss="ce"``, the stronger choice in
RecBole's and later benchmarks) or the original SASRec binary cross-entropy with one sampled
negative per step (``loss="bce"``). The first item of a history is never a target (there is
nothing before it to predict from), as in both papers.

Histories longer than ``max_len`` are cut into overlapping windows (:meth:`UserSequences.windows`),
so every later interaction is a target once with at least ``max_len // 2`` steps of context.
A user with no training history is scored from the empty sequence (the padding embedding).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from textinterest.models.base import Capabilities
from textinterest.models.torch_base import TorchRecommender
from textinterest.training import TrainConfig

__all__ = ["NextItemConfig", "SASRec", "GRU4Rec", "SASRecRecommender", "GRU4RecRecommender"]

LOSSES = ("ce", "bce")


@dataclass
class NextItemConfig:
    """Shape of a next-item model (SASRec or GRU4Rec)."""

    n_items: int = 1  # items seen in training; index 0 = padding / unknown
    hidden: int = 64  # embedding size (= model width)
    n_layers: int = 2  # attention blocks (SASRec) or GRU layers (GRU4Rec)
    n_heads: int = 1  # attention heads (SASRec only)
    dropout: float = 0.2  # dropout on embeddings, attention and feed-forward outputs
    max_len: int = 50  # steps kept per window / per user at scoring time

    def __post_init__(self) -> None:
        for name in ("n_items", "hidden", "n_layers", "n_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"NextItemConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.n_heads:
            raise ValueError(f"NextItemConfig.hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"NextItemConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.max_len < 2:
            raise ValueError(f"NextItemConfig.max_len must be >= 2, got {self.max_len}")


class _ItemTable(nn.Module):
    """Shared item embedding table; ``logits(h)`` scores items 1..n_items."""

    def __init__(self, config: NextItemConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.n_items + 1, config.hidden, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """states (..., H) -> (..., n_items)."""
        return states @ self.item_emb.weight[1:].T


class SASRec(_ItemTable):
    """Causal self-attention over the item sequence (see the module docstring)."""

    def __init__(self, config: NextItemConfig) -> None:
        super().__init__(config)
        H, p = config.hidden, config.dropout
        self.pos_emb = nn.Embedding(config.max_len, H)
        self.drop = nn.Dropout(p)
        self.attn_norm = nn.ModuleList(nn.LayerNorm(H) for _ in range(config.n_layers))
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(H, config.n_heads, dropout=p, batch_first=True) for _ in range(config.n_layers)
        )
        self.ffn_norm = nn.ModuleList(nn.LayerNorm(H) for _ in range(config.n_layers))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(H, H), nn.ReLU(), nn.Dropout(p), nn.Linear(H, H), nn.Dropout(p))
            for _ in range(config.n_layers)
        )
        self.out_norm = nn.LayerNorm(H)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: (B, T) right-padded with 0 -> (B, T, H); state t has seen steps <= t only."""
        B, T = items.shape
        assert T <= self.config.max_len, f"sequence of {T} steps > max_len {self.config.max_len}"
        valid = items > 0  # (B, T)
        x = self.item_emb(items) * self.config.hidden**0.5 + self.pos_emb(torch.arange(T, device=items.device))[None]
        x = self.drop(x) * valid[..., None]  # (B, T, H)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=items.device), diagonal=1)  # True = blocked
        pad = ~valid
        pad[:, 0] = False  # an empty sequence still attends to something (its output is the empty-history state)
        for norm, attn, fnorm, ffn in zip(self.attn_norm, self.attn, self.ffn_norm, self.ffn):
            q = norm(x)
            a, _ = attn(q, x, x, attn_mask=causal, key_padding_mask=pad, need_weights=False)
            x = q + a  # residual from the normalised input, as in the SASRec reference code
            x = (x + ffn(fnorm(x))) * valid[..., None]
        return self.out_norm(x)


class GRU4Rec(_ItemTable):
    """GRU over the item sequence, mapped back to the embedding size (see the module docstring)."""

    def __init__(self, config: NextItemConfig) -> None:
        super().__init__(config)
        H = config.hidden
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            H, H, num_layers=config.n_layers, batch_first=True, dropout=config.dropout if config.n_layers > 1 else 0.0
        )
        self.out = nn.Linear(H, H)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: (B, T) right-padded with 0 -> (B, T, H); causal by construction."""
        h, _ = self.gru(self.drop(self.item_emb(items)))  # (B, T, H)
        return self.out(h)


class _NextItemRecommender(TorchRecommender):
    """Training and scoring shared by SASRec and GRU4Rec (ranking only)."""

    capabilities = Capabilities(rating=False, ranking=True, sequential=True, trains_with_torch=True)
    module_class: type[_ItemTable] = SASRec

    def __init__(
        self,
        task: str = "ranking",
        *,
        hidden: int = 64,
        n_layers: int = 2,
        n_heads: int = 1,
        dropout: float = 0.2,
        max_len: int = 50,
        loss: str = "ce",
        train_config: TrainConfig | None = None,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__(
            task, train_config or TrainConfig(batch_size=128, lr=1e-3, patience=5, epochs=100), eval_batch_size
        )
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.loss = loss
        self.shape = dict(hidden=hidden, n_layers=n_layers, n_heads=n_heads, dropout=dropout, max_len=max_len)
        NextItemConfig(**self.shape)  # fail early on a bad shape

    def _build(self, train: pd.DataFrame) -> nn.Module:
        config = NextItemConfig(n_items=len(self.item_index), **self.shape)
        windows = self.seq.windows(config.max_len)
        self._windows = windows[windows[:, 2] - windows[:, 1] >= 2]  # one step has no target
        if not len(self._windows):
            raise ValueError(f"{type(self).__name__}: no training user has two or more interactions; nothing to learn")
        return self.module_class(config)

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        order = rng.permutation(len(self._windows))
        bs = self.train_config.batch_size
        for s in range(0, len(order), bs):
            win = self._windows[order[s : s + bs]]
            pos, mask, target = self.seq.pad(win)
            items = np.where(mask, self.seq.item[pos] + 1, 0)
            batch = {"items": torch.as_tensor(items), "target": torch.as_tensor(target)}
            if self.loss == "bce":
                batch["neg"] = torch.as_tensor(rng.integers(1, len(self.item_index) + 1, size=items.shape))
            yield batch

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        items = batch["items"]
        states = module(items)[:, :-1]  # (B, T-1, H): state after step t predicts step t+1
        b, t = batch["target"][:, 1:].nonzero(as_tuple=True)  # (R,)
        h = states[b, t]  # (R, H)
        label = items[b, t + 1]  # (R,) in 1..n_items
        if self.loss == "ce":
            return F.cross_entropy(module.logits(h).float(), label - 1)
        neg = batch["neg"][b, t + 1]
        emb = module.item_emb
        pos_logit = (h * emb(label)).sum(-1).float()
        neg_logit = (h * emb(neg)).sum(-1).float()
        return F.binary_cross_entropy_with_logits(
            pos_logit, torch.ones_like(pos_logit)
        ) + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        win = self.seq.last_window(users, self.shape["max_len"])
        pos, mask, _ = self.seq.pad(win)
        items = self.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0))
        states = self.module(items)  # (B, T, H)
        last = self.as_tensor(np.maximum(mask.sum(1) - 1, 0))  # empty history: the state of step 0 (padding)
        return self.module.logits(states[torch.arange(len(win), device=self.device), last]).float().cpu().numpy()


class SASRecRecommender(_NextItemRecommender):
    """SASRec next-item recommender (ranking only).

    Args:
        task: must be "ranking".
        hidden: embedding size.
        n_layers: self-attention blocks.
        n_heads: attention heads (must divide ``hidden``).
        dropout: dropout rate.
        max_len: steps kept per user.
        loss: "ce" (full softmax) or "bce" (one sampled negative per step, as in the paper).
        train_config: :class:`TrainConfig` (batch_size counts windows).
        eval_batch_size: users per forward pass at scoring time.
    """

    name = "sasrec"
    module_class = SASRec


class GRU4RecRecommender(_NextItemRecommender):
    """GRU4Rec next-item recommender (ranking only); arguments as :class:`SASRecRecommender`
    (``n_layers`` = GRU layers, ``n_heads`` unused)."""

    name = "gru4rec"
    module_class = GRU4Rec

    def __init__(
        self,
        task: str = "ranking",
        *,
        hidden: int = 64,
        n_layers: int = 1,
        dropout: float = 0.2,
        max_len: int = 50,
        loss: str = "ce",
        train_config: TrainConfig | None = None,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__(
            task,
            hidden=hidden,
            n_layers=n_layers,
            n_heads=1,
            dropout=dropout,
            max_len=max_len,
            loss=loss,
            train_config=train_config,
            eval_batch_size=eval_batch_size,
        )
