"""Next-item peers of the field, written compactly in torch: SASRec and GRU4Rec.

Both read a user's training items in time order and score the whole catalogue for the next step;
they speak the house interface through :class:`~textinterest.models.torch_base.TorchRecommender`
(``fit(train, val=None)``, ``score_items(user_ids)``, early stopping on validation NDCG@10).
The defaults follow the reference recipe of RecBole (the implementation most published
next-item tables use), whose figures these peers reproduce (benchmarks/BENCHMARKS.md):

- **SASRec** (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): item plus
  learned position embeddings, layer norm and dropout, then ``n_layers`` post-LayerNorm blocks
  (causal multi-head self-attention, then a GELU feed-forward net of width ``inner``, each as
  ``LayerNorm(x + dropout(f(x)))``); the score of item ``i`` after step ``t`` is ``h_t . e_i``
  (input and output embeddings shared). ``norm="pre"`` keeps the paper's pre-LayerNorm variant.
- **GRU4Rec** (Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks",
  ICLR 2016), in the full-softmax form RecBole and later re-evaluations use: item embedding ->
  dropout -> GRU -> linear map back to the embedding size; score ``h_t . e_i``.

**Initialisation** (:func:`init_weights`): every linear, embedding and attention weight starts
normal(0, 0.02), biases zero. With PyTorch's defaults the position table starts N(0, 1) and drowns
the item embeddings; that alone cost SASRec about a third of its NDCG@10 (benchmarks/BENCHMARKS.md).

**Training examples** (``examples``): ``"prefix"`` (default, the reference) makes every prefix
of a training history one example, its last ``max_len`` steps as input and the next item as the
target, with the loss at that last step only; ``"window"`` cuts each history into overlapping
windows (:meth:`~textinterest.models.sequences.UserSequences.windows`) with the loss at every step.
Loss: cross-entropy over the full catalogue (``loss="ce"``) or the original SASRec binary
cross-entropy with one sampled negative per target (``loss="bce"``).

**Cost.** With every prefix as one example, the loss reads one state per example, the last
step's. SASRec computes only those (``states="last"``, :meth:`SASRec.last_states`): examples run in
groups of similar length, each group cut to its longest example, and the last block computes the
query, attention and feed-forward net of the last step alone. It is the same model with the same
dropout distribution as running every step of the padded batch (``states="all"``), in 0.30-0.57 of
the training time on the real data sets (benchmarks/BENCHMARKS.md); its random draws differ, so a
fit differs from an ``"all"`` fit as another seed's would.

**Test time.** Under the ``val-in-history`` protocol the models are refitted on train +
validation for the number of epochs early stopping chose on validation (``refit=True``, this
package's protocol for every model), which scores higher than the reference's choice,
``refit=False``: the fit early-stopped on validation scores the test item from the history
extended by the validation interaction (:meth:`~textinterest.models.sequences.HistoryUpdate.set_history`).
A user with no history is scored from the empty sequence (the padding embedding).
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
from textinterest.models.sequences import HistoryUpdate
from textinterest.models.torch_base import TorchRecommender
from textinterest.training import TrainConfig

__all__ = [
    "NextItemConfig",
    "SASRec",
    "GRU4Rec",
    "SASRecRecommender",
    "GRU4RecRecommender",
    "init_weights",
]

LOSSES = ("ce", "bce")
NORMS = ("post", "pre")
EXAMPLES = ("prefix", "window")
STATES = ("last", "all")
INIT_STD = 0.02  # normal init of every linear and embedding weight (BERT / RecBole)
LN_EPS = 1e-12
LENGTH_BUCKET = 8  # SASRec.last_states groups sequences by length rounded up to a multiple of this


@dataclass
class NextItemConfig:
    """Shape of a next-item model (SASRec or GRU4Rec)."""

    n_items: int = 1  # items seen in training; index 0 = padding / unknown
    hidden: int = 64  # embedding size (= model width)
    n_layers: int = 2  # attention blocks (SASRec) or GRU layers (GRU4Rec)
    n_heads: int = 1  # attention heads (SASRec only)
    inner: int = 256  # width of the feed-forward net (SASRec only)
    dropout: float = 0.5  # dropout on embeddings, attention weights and block outputs
    max_len: int = 50  # steps kept per example / per user at scoring time
    norm: str = "post"  # "post" (reference) or "pre" LayerNorm blocks (SASRec only)

    def __post_init__(self) -> None:
        for name in ("n_items", "hidden", "n_layers", "n_heads", "inner"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"NextItemConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.n_heads:
            raise ValueError(f"NextItemConfig.hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"NextItemConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.max_len < 2:
            raise ValueError(f"NextItemConfig.max_len must be >= 2, got {self.max_len}")
        if self.norm not in NORMS:
            raise ValueError(f"NextItemConfig.norm must be one of {NORMS}, got {self.norm!r}")


def init_weights(module: nn.Module, std: float = INIT_STD) -> None:
    """Normal(0, std) weights for every linear, embedding and attention projection; zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            if m.in_proj_weight is not None:
                nn.init.normal_(m.in_proj_weight, std=std)
            if m.in_proj_bias is not None:
                nn.init.zeros_(m.in_proj_bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _ItemTable(nn.Module):
    """Shared item embedding table; ``logits(h)`` scores items 1..n_items."""

    def __init__(self, config: NextItemConfig) -> None:
        super().__init__()
        self.config = config
        self.item_emb = nn.Embedding(config.n_items + 1, config.hidden, padding_idx=0)

    def item_vectors(self) -> torch.Tensor:
        """(n_items + 1, H) input / output vectors of the items (row 0 = padding)."""
        return self.item_emb.weight

    def embed(self, items: torch.Tensor) -> torch.Tensor:
        """(B, T) item indices -> (B, T, H) their vectors."""
        return self.item_emb(items)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """states (..., H) -> (..., n_items)."""
        return states @ self.item_vectors()[1:].T

    def last_states(
        self, items: torch.Tensor, lengths: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T) right-padded items, (B,) lengths -> (B, H) the state after each last step
        (a length of 0: the state of the padding step), from the states of every step."""
        states = self(items) if extra is None else self(items, extra)  # (B, T, H)
        return states[torch.arange(len(items), device=items.device), (lengths - 1).clamp(min=0)]

    def _reset(self) -> None:
        init_weights(self)
        with torch.no_grad():
            self.item_emb.weight[self.item_emb.padding_idx].zero_()


class SASRecBlock(nn.Module):
    """One transformer layer: causal self-attention, then a feed-forward net.

    ``norm="post"``: ``x = LN(x + drop(attn(x)))``, ``x = LN(x + drop(ffn(x)))`` (RecBole, BERT).
    ``norm="pre"``: ``q = LN(x)``, ``x = q + drop(attn(q, x))``, ``x = x + drop(ffn(LN(x)))`` (the
    SASRec paper's code).
    """

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, norm: str = "post") -> None:
        super().__init__()
        self.post = norm == "post"
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.attn_drop = nn.Dropout(dropout)
        self.attn_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.ffn = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden), nn.Dropout(dropout))
        self.ffn_norm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """x (B, T, H), causal (T, T) bool (True = blocked) -> (B, T, H)."""
        if self.post:
            a = self.attn(x, x, x, attn_mask=causal, need_weights=False)[0]
            x = self.attn_norm(x + self.attn_drop(a))
            return self.ffn_norm(x + self.ffn(x))
        q = self.attn_norm(x)
        x = q + self.attn_drop(self.attn(q, x, x, attn_mask=causal, need_weights=False)[0])
        return x + self.ffn(self.ffn_norm(x))

    def forward_at(self, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The output at one step per sequence: x (B, T, H), last (B,) step indices -> (B, H).

        Equals ``forward(x, causal)[arange(B), last]``: the query of step ``last`` attends to steps
        ``<= last``, and the feed-forward net runs on that step alone.
        """
        rows = torch.arange(len(x), device=x.device)
        later = torch.arange(x.shape[1], device=x.device)[None, :] > last[:, None]  # (B, T) True = blocked
        if self.post:
            q = x[rows, last][:, None]  # (B, 1, H)
            a = self.attn(q, x, x, key_padding_mask=later, need_weights=False)[0]
            y = self.attn_norm(q + self.attn_drop(a))
            return self.ffn_norm(y + self.ffn(y))[:, 0]
        q = self.attn_norm(x[rows, last])[:, None]  # (B, 1, H); keys and values stay un-normalised
        y = q + self.attn_drop(self.attn(q, x, x, key_padding_mask=later, need_weights=False)[0])
        return (y + self.ffn(self.ffn_norm(y)))[:, 0]


class SASRec(_ItemTable):
    """Causal self-attention over the item sequence (see the module docstring)."""

    def __init__(self, config: NextItemConfig) -> None:
        super().__init__(config)
        H, p = config.hidden, config.dropout
        self.pos_emb = nn.Embedding(config.max_len, H)
        self.in_norm = nn.LayerNorm(H, eps=LN_EPS)  # post: on the input; pre: on the output
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(
            SASRecBlock(H, config.n_heads, config.inner, p, config.norm) for _ in range(config.n_layers)
        )
        self._reset()

    def step_extra(self, extra: torch.Tensor) -> torch.Tensor:
        """(..., E) per-step inputs -> (..., H) added to the item embeddings (here: as given)."""
        return extra

    def _inputs(self, items: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        """items (B, T), extra (B, T, E) or None -> (B, T, H) the first block's input."""
        T = items.shape[1]
        if T > self.config.max_len:
            raise ValueError(f"sequence of {T} steps > max_len {self.config.max_len}")
        pos = self.pos_emb(torch.arange(T, device=items.device))[None]  # (1, T, H)
        emb = self.embed(items) if extra is None else self.embed(items) + self.step_extra(extra)
        if self.config.norm == "post":
            return self.drop(self.in_norm(emb + pos))
        return self.drop(emb * self.config.hidden**0.5 + pos)

    @staticmethod
    def _causal(T: int, device: torch.device) -> torch.Tensor:
        return torch.triu(torch.ones(T, T, dtype=torch.bool, device=device), diagonal=1)  # True = blocked

    def forward(self, items: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """items: (B, T) right-padded with 0 -> (B, T, H); state t has seen steps <= t only.

        ``extra`` (B, T, E), optional: per-step inputs, mapped by :meth:`step_extra` and added to
        the item embeddings (e.g. item text). Right padding never reaches a valid step (the mask
        is causal), so no padding mask is needed.
        """
        x = self._inputs(items, extra)
        causal = self._causal(items.shape[1], items.device)
        for block in self.blocks:
            x = block(x, causal)
        return x if self.config.norm == "post" else self.in_norm(x)

    def last_states(
        self, items: torch.Tensor, lengths: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The state after each sequence's last step: (B, T) right-padded items, (B,) lengths -> (B, H).

        Equals ``forward(items, extra)[arange(B), max(lengths - 1, 0)]`` (a length of 0 gives the
        state of the padding step) but does far less work, and in training mode draws dropout from
        the same distribution:

        - sequences run in groups of similar length (lengths rounded up to a multiple of
          ``LENGTH_BUCKET``), each group cut to its longest sequence, so padding costs little
          (with the causal mask, steps after a sequence's end never reach its last state);
        - the last block computes the query, the attention and the feed-forward net of the last
          step only (:meth:`SASRecBlock.forward_at`).
        """
        lengths = lengths.clamp(min=1)
        out = None
        buckets = (lengths + LENGTH_BUCKET - 1) // LENGTH_BUCKET
        for b in torch.unique(buckets).tolist():
            rows = torch.nonzero(buckets == b).flatten()
            T = int(lengths[rows].max())
            x = self._inputs(items[rows, :T], None if extra is None else extra[rows, :T])
            causal = self._causal(T, items.device)
            for block in self.blocks[:-1]:
                x = block(x, causal)
            h = self.blocks[-1].forward_at(x, lengths[rows] - 1)
            h = h if self.config.norm == "post" else self.in_norm(h)
            if out is None:
                out = h.new_empty((len(items), h.shape[-1]))
            out[rows] = h
        assert out is not None
        return out


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
        self._reset()
        for name, weight in self.gru.named_parameters():  # RecBole: xavier for the recurrent weights
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.zeros_(weight)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: (B, T) right-padded with 0 -> (B, T, H); causal by construction."""
        h, _ = self.gru(self.drop(self.embed(items)))  # (B, T, H)
        return self.out(h)


class _NextItemRecommender(HistoryUpdate, TorchRecommender):
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
        inner: int = 256,
        dropout: float = 0.5,
        max_len: int = 50,
        norm: str = "post",
        loss: str = "ce",
        examples: str = "prefix",
        refit: bool = True,
        states: str = "last",
        train_config: TrainConfig | None = None,
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__(task, train_config, eval_batch_size)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if states not in STATES:
            raise ValueError(f"states must be one of {STATES}, got {states!r}")
        self.states = states
        if examples not in EXAMPLES:
            raise ValueError(f"examples must be one of {EXAMPLES}, got {examples!r}")
        self.loss, self.examples = loss, examples
        self.refit_for_test = bool(refit)
        self.shape = dict(
            hidden=hidden, n_layers=n_layers, n_heads=n_heads, inner=inner, dropout=dropout, max_len=max_len, norm=norm
        )
        NextItemConfig(**self.shape)  # fail early on a bad shape

    def _build(self, train: pd.DataFrame) -> nn.Module:
        config = NextItemConfig(n_items=len(self.item_index), **self.shape)
        if self.examples == "prefix":
            self._examples = self.seq.prefixes(config.max_len)
        else:
            windows = self.seq.windows(config.max_len)
            self._examples = windows[windows[:, 2] - windows[:, 1] >= 2]  # one step has no target
        if not len(self._examples):
            raise ValueError(f"{type(self).__name__}: no training user has two or more interactions; nothing to learn")
        return self._make_module(config)

    def _make_module(self, config: NextItemConfig) -> nn.Module:
        return self.module_class(config)

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        order = rng.permutation(len(self._examples))
        bs = self.train_config.batch_size
        for s in range(0, len(order), bs):
            yield self._batch(self._examples[order[s : s + bs]], rng)

    def _batch(self, examples: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The tensors of one batch of examples (rows of :meth:`UserSequences.prefixes` or ``windows``)."""
        pos, mask, target = self.seq.pad(examples)
        items = np.where(mask, self.seq.item[pos] + 1, 0)
        batch = {"items": torch.as_tensor(items)}
        if self.examples == "prefix":  # one target per example: the item after its last step
            batch["label"] = torch.as_tensor(self.seq.item[examples[:, 2]] + 1)
            batch["last"] = torch.as_tensor(mask.sum(1) - 1)
        else:
            batch["target"] = torch.as_tensor(target)
        if self.loss == "bce":
            batch["neg"] = torch.as_tensor(rng.integers(1, len(self.item_index) + 1, size=items.shape))
        return batch

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        items = batch["items"]
        if "label" in batch:
            rows = torch.arange(len(items), device=items.device)
            h, label = self._last_states(module, batch), batch["label"]  # (B, H), (B,)
            neg = batch["neg"][rows, batch["last"]] if "neg" in batch else None
        else:  # the state after step t predicts step t + 1, at every step of the window
            states = self._forward(module, batch)  # (B, T, H)
            rows, t = batch["target"][:, 1:].nonzero(as_tuple=True)  # (R,)
            h, label = states[rows, t], items[rows, t + 1]  # (R, H), (R,) in 1..n_items
            neg = batch["neg"][rows, t + 1] if "neg" in batch else None
        if self.loss == "ce":
            return F.cross_entropy(self._train_logits(module, h, rows, batch).float(), label - 1)
        pos_logit = (h * module.embed(label)).sum(-1).float()
        neg_logit = (h * module.embed(neg)).sum(-1).float()
        return F.binary_cross_entropy_with_logits(
            pos_logit, torch.ones_like(pos_logit)
        ) + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))

    def _forward(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, H) states of a training batch."""
        return module(batch["items"])

    def _last_states(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, H) states after the last step of each prefix example of a training batch."""
        return self._states_at_end(module, batch["items"], batch["last"] + 1)

    def _states_at_end(
        self, module: nn.Module, items: torch.Tensor, lengths: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, H) the state after each sequence's last step, computed as ``states`` says."""
        if self.states == "all":
            return _ItemTable.last_states(module, items, lengths, extra)
        return module.last_states(items, lengths, extra)

    def _train_logits(
        self, module: nn.Module, h: torch.Tensor, rows: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """(R, n_items) scores of the targets' states ``h``; ``rows``: each target's example in the batch."""
        return module.logits(h)

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        win = self.seq.last_window(users, self.shape["max_len"])
        pos, mask, _ = self.seq.pad(win)
        items = self.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0))
        h = self._states_at_end(self.module, items, self.as_tensor(mask.sum(1)))  # empty history: the padding state
        return self.module.logits(h).float().cpu().numpy()


class SASRecRecommender(_NextItemRecommender):
    """SASRec next-item recommender (ranking only).

    Args:
        task: must be "ranking".
        hidden: embedding size.
        n_layers: self-attention blocks.
        n_heads: attention heads (must divide ``hidden``).
        inner: width of the feed-forward nets.
        dropout: dropout rate (embeddings, attention weights, block outputs).
        max_len: steps kept per example and per user.
        norm: "post" (reference) or "pre" LayerNorm blocks.
        loss: "ce" (full softmax) or "bce" (one sampled negative per target, as in the paper).
        examples: "prefix" (every prefix of a history, loss at its last step) or "window"
            (overlapping windows, loss at every step).
        refit: under ``val-in-history``, refit on train + validation for the epochs early stopping
            chose (True, the default), or score the early-stopped fit with the validation item added
            to the history (False, the reference's choice).
        states: "last" (default) computes only the states the loss and the scores read, each
            example's last step (:meth:`SASRec.last_states`: examples grouped by length, the last
            block at the last step only); "all" runs every step of the padded batch and picks the
            last, as this package did before (the same model and the same dropout distribution, but
            other random draws: a fit differs within seed noise; GRU4Rec always uses "all").
        train_config: :class:`TrainConfig` (batch_size counts examples); None: the registered default
            (:data:`textinterest.models.train_defaults.TRAIN_DEFAULTS`, the reference recipe).
        eval_batch_size: users per forward pass at scoring time.
    """

    name = "sasrec"
    module_class = SASRec


class GRU4RecRecommender(_NextItemRecommender):
    """GRU4Rec next-item recommender (ranking only); arguments as :class:`SASRecRecommender`
    (``n_layers`` = GRU layers; ``n_heads``, ``inner`` and ``norm`` unused)."""

    name = "gru4rec"
    module_class = GRU4Rec

    def __init__(self, task: str = "ranking", *, n_layers: int = 1, dropout: float = 0.3, **options: Any) -> None:
        super().__init__(task, n_layers=n_layers, dropout=dropout, **options)
