"""The dynamic interest network: decomposition of a user's history into components, composition per item.

For a user with training history (in time order, key ``(timestamp, source_order)``) each step is

    x_j = [review vector e_j (D) | item representation of the reviewed item (H) |
           normalised rating | rated flag | log(1 + days since previous review) | sentiment s_j]

(e_j and s_j only with ``use_text``, s_j only with ``use_sentiment``: the slot is dropped, not zeroed)

    z_j = GELU(W_in x_j)                        step embedding        (B, T, H)
    h_j = LSTM(h_{j-1}, z_j)                     hidden state          (B, T, H)   (z_j when use_lstm=False)
    v_j = W_v h_j                                value of the step     (B, T, H)

Decomposition. K learned queries q_k compete for every step (softmax over the components):

    gamma_jk = softmax_k(cos(q_k, W_key [h_j ; z_j]) / tau)           (B, T, K)
    c_k(t)   = (sum_{j<t} gamma_jk v_j + p e_k) / (sum_{j<t} gamma_jk + p)

with a learned "empty history" vector e_k and pseudo-count p (``prior_count``): a user with no
history gets e_k, a component that claims no step stays near e_k. Left alone, training lets one
component claim every step; two things keep the K components apart: the queries start at
k-means centroids of the initial keys (``kmeans_init``), and the loss adds
``assign_balance * (mean_j H(gamma_j) - H(mean_j gamma_j))`` (confident steps, balanced use of
the components). Two more components:
long-term l(t) = (sum_{j<t} v_j + p e_long) / (t + p) and short-term s(t) = v_{t-1} (e_short
when t = 0). All sums are prefix sums, so the components of *every* prefix t come out of one
pass: training on interaction t uses only steps j < t (causal), and validation / test use the
whole training history.

Composition. For a candidate item i with representation u_i = LN(E_item[i] + W_text t_i)
(t_i: its text vector, its description's or the mean of its training reviews; with ``time_safe_text``
only the reviews written before the scored time):

    beta_k(i) = softmax_k((W_q u_i) . (W_k c_k) / sqrt(H))
    v*(i)     = sum_k beta_k(i) c_k
    score     = mu + b_u + b_i + p_u . q_i  +  alpha cos(P v*, Q u_i) + w . v* + w_i . u_i
                \\____ CF term (use_cf) ___/   \\______________ text term ______________/

Training: ratings by MSE; ranking by a softmax over all items (or ``n_negatives`` sampled ones)
or BPR, the user's other training items left out of the negatives. Scoring all items is vectorised
without materialising (B, N, H): with
M = (P c)(Q u)^T (B, N, C) and the Gram matrix G = (P c)(P c)^T (B, C, C),
``P v* . Q u = beta . M`` and ``|P v*|^2 = beta^T G beta``.

The data side (batches, leave-one-out and time-safe item text, training, explanations) is
:class:`textinterest.models.interest.InterestRecommender`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textinterest.models.residual import RESIDUAL_BASES
from textinterest.models.sequence_encoders import SEQUENCE_ENCODERS, make_sequence_encoder, run_sequence_encoder

__all__ = ["InterestConfig", "DynamicInterestModel", "component_names", "RANKING_LOSSES"]

RANKING_LOSSES = ("softmax", "bpr")


@dataclass
class InterestMethod:
    """The method itself: sizes, the decomposition and composition, the losses and their weights."""

    n_users: int = 1  # users seen in training
    n_items: int = 1  # items seen in training
    text_dim: int = 384  # D: size of review and item text vectors
    hidden: int = 64  # H: step embedding, LSTM state and component size
    n_components: int = 4  # K: learned interest components
    mf_dim: int = 32  # size of the CF user/item embeddings
    dropout: float = 0.1  # dropout on step embeddings and item representations
    max_history: int = 50  # most recent training steps kept per user
    prior_count: float = 1.0  # pseudo-count of the learned empty-history component
    assign_temperature: float = 0.1  # temperature of the step -> component softmax over cosines
    kmeans_init: bool = True  # start the queries at k-means centroids of the initial step keys
    global_mean: float = 0.0  # mean training rating (rating task), added to every score
    rating_center: float = 3.0  # rating feature = (rating - center) / scale
    rating_scale: float = 2.0
    l2: float = 1.0  # L2 on all CF embeddings: sum of squares / number of training observations
    bias_l2: float = 10.0  # the same for the CF biases (BaselineOnly-like shrinkage)
    ranking_loss: str = "softmax"  # "softmax" (over all or sampled items) or "bpr"
    n_negatives: int = 0  # sampled-softmax negatives per batch; 0 = all items
    assign_balance: float = 0.1  # weight of the decomposition regulariser (confident steps, balanced use)
    loo_negatives: bool = True  # ranking: negatives' text vectors also leave one random training review out


@dataclass
class InterestSwitches:
    """Experiment switches: parts removed by the ablations and alternatives tried against the default."""

    use_text: bool = True  # False: IDs only (no review / item text vectors, no sentiment)
    use_sentiment: bool = True  # feed the sentiment score of each past review
    use_lstm: bool = True  # False: no recurrence, components pool the step embeddings
    use_cf: bool = True  # user/item biases + MF dot product in the score
    use_long_short: bool = True  # add the long-term and short-term components
    time_safe_text: bool = True  # item text vectors average only reviews written before the scored time
    sequence_encoder: str = "lstm"  # "lstm", "gru" or "attention" (causal self-attention); used if use_lstm
    residual_base: str = "none"  # "biases": rating = frozen ALS biases + residual (models/residual.py)
    residual_l2: float = 1.0  # weight of mean(residual^2) in the rating loss when residual_base != "none"
    # scale the item ID embedding by sigmoid(a log(1 + count) + b): rare items lean on text
    rare_item_gate: bool = False


@dataclass
class InterestConfig(InterestSwitches, InterestMethod):
    """Configuration of :class:`DynamicInterestModel` (index 0 of user/item tables = unknown): the fields of
    :class:`InterestMethod` and of :class:`InterestSwitches`, flat (``config.hidden``, ``config.use_text``)."""

    def switches(self) -> dict[str, Any]:
        """The experiment switches and their values (the fields of :class:`InterestSwitches`)."""
        return {f.name: getattr(self, f.name) for f in fields(InterestSwitches)}

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "text_dim", "hidden", "n_components", "mf_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"InterestConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"InterestConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.max_history < 2:
            raise ValueError(f"InterestConfig.max_history must be >= 2, got {self.max_history}")
        if not self.prior_count > 0:
            raise ValueError(f"InterestConfig.prior_count must be > 0, got {self.prior_count}")
        if not self.assign_temperature > 0:
            raise ValueError(f"InterestConfig.assign_temperature must be > 0, got {self.assign_temperature}")
        if not self.rating_scale > 0:
            raise ValueError(f"InterestConfig.rating_scale must be > 0, got {self.rating_scale}")
        if self.ranking_loss not in RANKING_LOSSES:
            raise ValueError(f"InterestConfig.ranking_loss must be one of {RANKING_LOSSES}, got {self.ranking_loss!r}")
        if self.n_negatives < 0:
            raise ValueError(f"InterestConfig.n_negatives must be >= 0, got {self.n_negatives}")
        if self.sequence_encoder not in SEQUENCE_ENCODERS:
            raise ValueError(
                f"InterestConfig.sequence_encoder must be one of {SEQUENCE_ENCODERS}, got {self.sequence_encoder!r}"
            )
        if self.residual_base not in RESIDUAL_BASES:
            raise ValueError(
                f"InterestConfig.residual_base must be one of {RESIDUAL_BASES}, got {self.residual_base!r}"
            )
        for name in ("l2", "bias_l2", "assign_balance", "residual_l2"):
            if getattr(self, name) < 0:
                raise ValueError(f"InterestConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def n_slots(self) -> int:
        """C: number of components composed per item (K, plus long and short term)."""
        return self.n_components + (2 if self.use_long_short else 0)


def component_names(config: InterestConfig) -> list[str]:
    """Names of the C components, in the model's order."""
    names = [f"interest_{k + 1}" for k in range(config.n_components)]
    return names + (["long_term", "short_term"] if config.use_long_short else [])


class DynamicInterestModel(nn.Module):
    """The network; data handling lives in :class:`InterestRecommender`.

    A history batch is a dict of right-padded tensors, T steps:
    ``review`` (B, T, D) float, ``items`` (B, T) long (1-based, 0 = padding/unknown),
    ``sentiment``, ``rating``, ``rated``, ``log_gap`` (B, T) float, ``mask`` (B, T) bool.
    """

    config_class = InterestConfig

    def __init__(self, config: InterestConfig) -> None:
        super().__init__()
        self.config = c = config
        D, H, K, C = c.text_dim, c.hidden, c.n_components, c.n_slots
        self.drop = nn.Dropout(c.dropout)
        # item side: u_i = LN(E_item[i] + W_text t_i)
        self.item_id = nn.Embedding(c.n_items + 1, H, padding_idx=0)
        nn.init.normal_(self.item_id.weight, std=0.05)
        self.item_text_proj = nn.Linear(D, H) if c.use_text else None
        self.item_norm = nn.LayerNorm(H)
        if c.rare_item_gate:  # g_i = sigmoid(a log(1 + n_i) + b) scales E_item[i]; starts at 0.27 (n=0) .. 0.9 (n=20)
            self.register_buffer("item_log_count", torch.zeros(c.n_items + 1))
            self.rare_gate = nn.Parameter(torch.tensor([1.0, -1.0]))
        if c.residual_base != "none":  # frozen base biases (index 0 = unknown: 0)
            self.register_buffer("base_user_bias", torch.zeros(c.n_users + 1))
            self.register_buffer("base_item_bias", torch.zeros(c.n_items + 1))
        # row 0: mean text vector, used for unknown items
        self.register_buffer("item_text", torch.zeros(c.n_items + 1, D))
        # step encoder and recurrence
        n_scalars = 3 + (1 if (c.use_text and c.use_sentiment) else 0)  # rating, rated, log_gap (+ sentiment)
        self.step_in = (D if c.use_text else 0) + H + n_scalars
        self.step_proj = nn.Linear(self.step_in, H)
        self.encoder = make_sequence_encoder(c.sequence_encoder, H, c.max_history, c.dropout) if c.use_lstm else None
        # decomposition
        self.queries = nn.Parameter(torch.randn(K, H))  # q_k
        self.key_proj = nn.Linear(2 * H, H)  # keys from [h_j ; z_j]
        self.value_proj = nn.Linear(H, H)
        self.empty = nn.Parameter(0.05 * torch.randn(C, H))  # learned empty-history components
        # composition and text term
        self.comp_key = nn.Linear(H, H)
        self.comp_query = nn.Linear(H, H)
        self.text_user = nn.Linear(H, H)  # P
        self.text_item = nn.Linear(H, H)  # Q
        self.text_scale = nn.Parameter(torch.tensor(1.0))  # alpha
        self.dyn_bias = nn.Linear(H, 1, bias=False)  # w: rating level of the composed interest
        self.item_text_bias = nn.Linear(H, 1, bias=False)  # w_i: item bias read from its representation
        # CF term
        if c.use_cf:
            self.user_bias = nn.Embedding(c.n_users + 1, 1, padding_idx=0)
            self.item_bias = nn.Embedding(c.n_items + 1, 1, padding_idx=0)
            self.user_emb = nn.Embedding(c.n_users + 1, c.mf_dim, padding_idx=0)
            self.item_emb = nn.Embedding(c.n_items + 1, c.mf_dim, padding_idx=0)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
            nn.init.normal_(self.user_emb.weight, std=0.05)
            nn.init.normal_(self.item_emb.weight, std=0.05)
        with torch.no_grad():
            self.item_id.weight[0].zero_()
            if c.residual_base != "none":  # the residual starts at 0: the model starts at the frozen base
                self.text_scale.zero_()
                self.dyn_bias.weight.zero_()
                self.item_text_bias.weight.zero_()
            if c.use_cf:
                self.user_emb.weight[0].zero_()
                self.item_emb.weight[0].zero_()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # weights saved before the sequence encoder was named ``encoder`` call it ``lstm``
        for key in [k for k in state_dict if k.startswith(prefix + "lstm.")]:
            state_dict[prefix + "encoder." + key[len(prefix) + len("lstm.") :]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ items

    def item_repr(
        self, items: torch.Tensor, text: torch.Tensor | None = None, text_proj: torch.Tensor | None = None
    ) -> torch.Tensor:
        """items (...,) 1-based ids (0 = unknown); text (..., D) overrides the stored vectors -> (..., H).

        ``text_proj`` gives the linear part of ``item_text_proj(text)`` (its weight times the text, without
        the bias) directly, with optional leading dimensions of its own: items (N,) and text_proj (G, N, H)
        give (G, N, H), one table of item vectors per time.
        """
        r = self.item_id(items)  # (..., H)
        if self.config.rare_item_gate:
            a, b = self.rare_gate
            r = torch.sigmoid(a * self.item_log_count[items] + b)[..., None] * r
        if self.item_text_proj is not None:
            if text_proj is None:
                r = r + self.item_text_proj(self.item_text[items] if text is None else text)
            else:  # the bias joins the (N, H) side before it is broadcast over the G tables: one pass less
                r = (r + self.item_text_proj.bias) + text_proj
        return self.drop(self.item_norm(r))

    # ------------------------------------------------------------------ history -> components

    def steps(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Step embeddings z (B, T, H) and hidden states h (B, T, H) (h = z when use_lstm=False)."""
        c = self.config
        parts = []
        if c.use_text:
            parts.append(batch["review"])  # (B, T, D)
        parts.append(self.item_repr(batch["items"], batch.get("item_text")))  # (B, T, H); optional (B, T, D) text
        scalars = [batch["rating"], batch["rated"], batch["log_gap"]]
        if c.use_text and c.use_sentiment:
            scalars.append(batch["sentiment"])
        parts.append(torch.stack(scalars, dim=-1))  # (B, T, n_scalars)
        x = torch.cat(parts, dim=-1)  # (B, T, step_in)
        assert x.shape[-1] == self.step_in
        z = self.drop(F.gelu(self.step_proj(x)))  # (B, T, H)
        h = run_sequence_encoder(self.encoder, z) if self.encoder is not None else z  # (B, T, H); causal
        return z, h

    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the steps through the encoder.

        Returns:
            values v (B, T, H), assignments gamma (B, T, K) (0 at padding), z (B, T, H).
        """
        c = self.config
        mask = batch["mask"]  # (B, T)
        z, h = self.steps(batch)
        keys = self.step_keys(h, z)  # (B, T, H), unit norm
        logits = keys @ F.normalize(self.queries, dim=-1).T / c.assign_temperature  # (B, T, K) cosines / tau
        gamma = torch.softmax(logits.float(), dim=-1) * mask[..., None]  # (B, T, K)
        values = self.value_proj(h).float() * mask[..., None]  # (B, T, H)
        return values, gamma, z

    def step_keys(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Unit-norm attention keys of the steps from [h_j ; z_j]: (..., H)."""
        return F.normalize(self.key_proj(torch.cat([h, z], dim=-1)).float(), dim=-1)

    def prefix_components(self, values: torch.Tensor, gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Components of every prefix.

        Args:
            values: (B, T, H) step values (0 at padding).
            gamma: (B, T, K) assignments (0 at padding).

        Returns:
            comps (B, T + 1, C, H): row t uses steps < t only; den (B, T + 1, K) the assigned mass.
        """
        c = self.config
        B, T, H = values.shape
        p = c.prior_count
        pad1 = lambda x: F.pad(x, (0, 0) * (x.dim() - 2) + (1, 0))  # noqa: E731 - prepend a zero step
        num = pad1(torch.cumsum(gamma[..., None] * values[:, :, None, :], dim=1))  # (B, T+1, K, H)
        den = pad1(torch.cumsum(gamma, dim=1))  # (B, T+1, K)
        empty = self.empty.float()  # (C, H)
        topics = (num + p * empty[: c.n_components]) / (den[..., None] + p)  # (B, T+1, K, H)
        if not c.use_long_short:
            return topics, den
        count = torch.arange(T + 1, device=values.device, dtype=values.dtype)[None, :, None]  # (1, T+1, 1)
        long = (pad1(torch.cumsum(values, dim=1)) + p * empty[-2]) / (count + p)  # (B, T+1, H)
        short = torch.cat([empty[-1].expand(B, 1, H), values], dim=1)  # (B, T+1, H): v_{t-1}
        return torch.cat([topics, long[:, :, None], short[:, :, None]], dim=2), den  # (B, T+1, C, H)

    def final_components(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Components after each user's whole (given) history.

        Returns:
            comps (B, C, H), gamma (B, T, K), den (B, K).
        """
        values, gamma, _ = self.encode(batch)
        comps, den = self.prefix_components(values, gamma)
        lengths = batch["mask"].sum(1)  # (B,)
        rows = torch.arange(len(lengths), device=lengths.device)
        return comps[rows, lengths], gamma, den[rows, lengths]

    # ------------------------------------------------------------------ scoring

    def cf_term(
        self, users: torch.Tensor, items: torch.Tensor | None, candidates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """users (R,); items (R,) -> (R,), or None -> (R, N) for all items, or (R, N') for ``candidates`` (N',)."""
        mu = self.config.global_mean + self.base_term(users, items, candidates)
        if not self.config.use_cf:
            return mu
        if items is None:
            if candidates is None:
                bias, emb = self.item_bias.weight[1:, 0], self.item_emb.weight[1:]  # (N,), (N, d)
            else:
                bias, emb = self.item_bias(candidates)[:, 0], self.item_emb(candidates)  # (N',), (N', d)
            return mu + self.user_bias(users) + bias + self.user_emb(users) @ emb.T
        return (
            mu
            + self.user_bias(users)[:, 0]
            + self.item_bias(items)[:, 0]
            + (self.user_emb(users) * self.item_emb(items)).sum(-1)
        )

    def base_term(
        self, users: torch.Tensor, items: torch.Tensor | None, candidates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The frozen base's biases b_u + b_i (``residual_base``): (R,), or (R, N) for all items, or (R, N') for
        ``candidates``; 0 without a base."""
        n = self.config.n_items if candidates is None else candidates.shape[0]
        shape = (users.shape[0],) if items is not None else (users.shape[0], n)
        if self.config.residual_base == "none":
            return torch.zeros(shape, device=users.device)
        if items is None:
            item_bias = self.base_item_bias[1:] if candidates is None else self.base_item_bias[candidates]
            return self.base_user_bias[users][:, None] + item_bias[None, :]
        return self.base_user_bias[users] + self.base_item_bias[items]

    def _composition_side(self, comps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys W_k c_k, text projections P c_k and rating levels w . c_k of the components (R, C, ...)."""
        comps = comps.float()
        return self.comp_key(comps), self.text_user(comps), self.dyn_bias(comps)[..., 0]  # (R,C,H) (R,C,H) (R,C)

    def score_pairs(
        self, comps: torch.Tensor, users: torch.Tensor, items: torch.Tensor, item_text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score one item per row: beta_k(i) = softmax_k(W_q u_i . W_k c_k / sqrt(H)), v* = sum_k beta_k c_k.

        Args:
            comps: (R, C, H) components of each row's history prefix.
            users: (R,) 1-based user ids (0 = unknown).
            items: (R,) 1-based item of each row.
            item_text: (R, D) text vectors overriding the stored ones for ``items``.

        Returns:
            scores (R,) = CF term + alpha cos(P v*, Q u_i) + w . v* + w_i . u_i, and beta (R, C).
        """
        k, pc, level = self._composition_side(comps)
        u = self.item_repr(items, item_text)  # (R, H)
        beta = torch.softmax((k @ self.comp_query(u)[..., None])[..., 0] / math.sqrt(self.config.hidden), dim=-1)
        v = (beta[..., None] * pc).sum(1)  # (R, H) = P v*
        cos = F.cosine_similarity(v, self.text_item(u), dim=-1, eps=1e-6)  # (R,)
        text = self.text_scale * cos + (beta * level).sum(-1) + self.item_text_bias(u)[:, 0]
        return self.cf_term(users, items) + text, beta

    def score_candidates(
        self,
        comps: torch.Tensor,
        users: torch.Tensor,
        candidates: torch.Tensor | None = None,
        candidate_text: torch.Tensor | None = None,
        candidate_text_proj: torch.Tensor | None = None,
        row_table: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score the same candidates for every row, without materialising (R, N, H).

        Args:
            comps: (R, C, H) components of each row's history prefix.
            users: (R,) 1-based user ids (0 = unknown).
            candidates: (N,) 1-based items scored for every row; None = all items.
            candidate_text: (N, D) text vectors overriding the stored ones for the candidates.
            candidate_text_proj: (G, N, H) projected text of the candidates (``item_text_proj``'s weight times
                the text, without its bias) in G tables (time-safe scoring: one table per prediction time);
                row r reads table ``row_table[r]``.
            row_table: (R,) table of each row, with ``candidate_text_proj``; None: row r reads table r (G = R),
                and no (R, N, H) copy is gathered.

        Returns:
            scores (R, N) and beta (R, N, C). With M = (P c)(Q u)^T and G = (P c)(P c)^T,
            ``P v* . Q u = beta . M`` and ``|P v*|^2 = beta^T G beta``.
        """
        k, pc, level = self._composition_side(comps)
        all_items = candidates is None
        if all_items:
            candidates = torch.arange(1, self.config.n_items + 1, device=comps.device)
        # (R, C, N) layout: the softmax and the sums over C run along contiguous rows of N
        u = self.item_repr(candidates, candidate_text, candidate_text_proj)  # (N, H), or (G, N, H) tables
        query, pu = self.comp_query(u), self.text_item(u)  # item side, once per table
        pu_norm, item_bias = pu.norm(dim=-1), self.item_text_bias(u)[..., 0]  # (N,) or (G, N)
        if candidate_text_proj is not None and row_table is not None:  # each row its table: (R, N, H), (R, N)
            query, pu, pu_norm, item_bias = query[row_table], pu[row_table], pu_norm[row_table], item_bias[row_table]
        att = (k @ query.transpose(-1, -2)) / math.sqrt(self.config.hidden)  # (R, C, N)
        beta = torch.softmax(att, dim=1)  # (R, C, N)
        m = pc @ pu.transpose(-1, -2)  # (R, C, N)
        gram = pc @ pc.transpose(1, 2)  # (R, C, C)
        dot = (beta * m).sum(1)  # (R, N)
        sq = ((gram @ beta) * beta).sum(1).clamp_min(0.0)  # (R, N) = |P v*|^2
        cos = dot / (torch.sqrt(sq + 1e-12) * pu_norm).clamp_min(1e-6)  # (R, N)
        text = self.text_scale * cos + (level[:, None, :] @ beta)[:, 0] + item_bias  # (R, N)
        cf = self.cf_term(users, None, None if all_items else candidates)  # (R, N)
        return cf + text, beta.transpose(1, 2)

    def assignment_penalty(self, gamma: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean per-step entropy of gamma minus the entropy of the mean assignment (>= -log K)."""
        g = gamma[mask]  # (S, K)
        if g.shape[0] == 0:
            return gamma.sum() * 0.0
        step_entropy = -(g * torch.log(g + 1e-8)).sum(-1).mean()
        usage = g.mean(0)
        return step_entropy + (usage * torch.log(usage + 1e-8)).sum()

    def cf_penalty(self) -> torch.Tensor:
        """``bias_l2 * sum(b^2) + l2 * sum(p^2 + q^2 + E_item^2)`` over all ID parameters.

        The caller divides by the number of training observations.
        """
        c = self.config
        total = c.l2 * self.item_id.weight.pow(2).sum()
        if c.use_cf:
            total = total + c.bias_l2 * (self.user_bias.weight.pow(2).sum() + self.item_bias.weight.pow(2).sum())
            total = total + c.l2 * (self.user_emb.weight.pow(2).sum() + self.item_emb.weight.pow(2).sum())
        return total
