"""Sequence encoders of the interest model: step embeddings z (B, T, H) -> hidden states h (B, T, H).

Every encoder is causal (h_j reads steps <= j only), so the interest model's prefix sums keep
their "steps before t" guarantee, and right padding never reaches a real step.

- ``"lstm"``: the seed article's recurrence (the default).
- ``"gru"``: the same with a GRU cell (GRU4Rec's choice).
- ``"attention"``: one SASRec-style block: learned positions, causal multi-head self-attention and
  a position-wise feed-forward layer, each with a residual connection and layer norm.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SEQUENCE_ENCODERS", "CausalSelfAttention", "make_sequence_encoder", "run_sequence_encoder"]

SEQUENCE_ENCODERS = ("lstm", "gru", "attention")


class CausalSelfAttention(nn.Module):
    """One SASRec block over step embeddings.

    Args:
        hidden: H.
        max_len: most steps in a sequence (size of the position table).
        heads: attention heads (H must divide by it; 1 is used otherwise).
        dropout: dropout on attention weights and the feed-forward output.
    """

    def __init__(self, hidden: int, max_len: int, heads: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        heads = heads if hidden % heads == 0 else 1
        self.pos = nn.Embedding(max_len, hidden)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, T, H) -> (B, T, H); row j attends to rows <= j."""
        T = z.shape[1]
        if T > self.pos.num_embeddings:
            raise ValueError(f"sequence of {T} steps exceeds the encoder's max_len={self.pos.num_embeddings}")
        x = z + self.pos.weight[:T][None]  # (B, T, H)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=z.device), diagonal=1)  # True = masked
        a = self.attn(x, x, x, attn_mask=causal, need_weights=False)[0]
        x = self.norm1(x + a)
        return self.norm2(x + self.ff(x))


def make_sequence_encoder(kind: str, hidden: int, max_len: int, dropout: float = 0.1) -> nn.Module:
    """The encoder named ``kind`` (one of :data:`SEQUENCE_ENCODERS`).

    Args:
        kind: "lstm", "gru" or "attention".
        hidden: H, the size of the step embeddings and hidden states.
        max_len: longest history (positions of the attention encoder).
        dropout: dropout inside the attention block.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "lstm":  # a bare nn.LSTM keeps the parameter names of saved models
        return nn.LSTM(hidden, hidden, batch_first=True)
    if kind == "gru":
        return nn.GRU(hidden, hidden, batch_first=True)
    if kind == "attention":
        return CausalSelfAttention(hidden, max_len, dropout=dropout)
    raise ValueError(f"sequence_encoder must be one of {SEQUENCE_ENCODERS}, got {kind!r}")


def run_sequence_encoder(encoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Hidden states (B, T, H) of ``encoder`` (from :func:`make_sequence_encoder`) over z (B, T, H)."""
    out = encoder(z)
    return out[0] if isinstance(encoder, nn.RNNBase) else out
