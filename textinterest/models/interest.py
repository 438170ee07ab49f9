"""The interest recommender: batches of users' time-ordered reviews, training, scoring and explanations.
(Above 500 lines on purpose: batching, training and explanations of the model read as one unit.)

The network and its equations (decomposition into K + 2 components, composition per candidate
item, the CF and text terms) are in :mod:`textinterest.models.interest_network`.

No leakage. The step of the predicted review is never an input to its prediction (prefix
sums are exclusive), and the target item's text vector during training leaves the target
review out (leave-one-out mean). Item text vectors come from training reviews only. So that
"one review fewer" does not give the positives away, the negatives' text vectors also leave one
random training review out (``loo_negatives``); without this, on sparse catalogues (Goodreads)
the model learned that cue and ranked worse than without text.

Time-safe item text (``time_safe_text``, the default). Leave-last-out is per user, so another
user's training review of an item may be written after the review being predicted. With this
switch an item's text vector never averages such reviews (:mod:`textinterest.models.item_text`):
a training target's item vector averages the item's reviews written strictly before the target
(so it also leaves the target's own review out), the negatives' vectors are taken at the earliest
target time of their bucket (``TIME_BUCKETS`` per batch, targets in time order), and at prediction
time (:meth:`InterestRecommender.set_prediction_times`, also the validation rows during early
stopping) every item vector -- of the candidates and of the history steps -- and the fallback
for items without an earlier review (the mean of all earlier reviews) are taken at the user's
prediction time. History steps during training still read the all-reviews vectors.
``time_safe_text=False`` is the earlier behaviour (row ``interest-future-text``).

Other switches, each with its own row in :mod:`textinterest.models.registry`:
``sequence_encoder`` ("lstm", "gru" or a causal self-attention block,
:mod:`textinterest.models.sequence_encoders`); ``residual_base="biases"`` (ratings = frozen ALS
biases + the model as a residual pulled toward 0 by ``residual_l2``, :mod:`textinterest.models.residual`);
``rare_item_gate`` (u_i = LN(g_i E_item[i] + W_text t_i) with g_i = sigmoid(a log(1 + n_i) + b),
n_i the item's training count, so rare items lean on their text).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from textinterest.constants import TIME_COL
from textinterest.models.base import Capabilities
from textinterest.models.interest_network import DynamicInterestModel, InterestConfig, component_names
from textinterest.models.item_text import ItemTextHistory, TimeSafeScoring
from textinterest.models.residual import fit_biases
from textinterest.models.sequences import group_sums, sample_negatives, seen_codes, seen_mask, shuffled_batches
from textinterest.models.text_features import TextFeatures
from textinterest.models.torch_base import TorchRecommender
from textinterest.training import TrainConfig

__all__ = [
    "InterestConfig",
    "DynamicInterestModel",
    "TextFeatures",
    "InterestRecommender",
    "component_names",
]

TIME_BUCKETS = 8  # time-safe training: candidates' text is looked up at 8 target times per batch


# --------------------------------------------------------------------------- data + recommender


class InterestRecommender(TimeSafeScoring, TorchRecommender):
    """Fit / predict / rank with :class:`DynamicInterestModel` (same interface as the baselines).

    Args:
        config: model settings; ``n_users``, ``n_items``, ``text_dim`` and ``global_mean`` are set by ``fit``.
        features: :class:`TextFeatures` of the training rows (required unless ``use_text=False``).
        task: "rating" (MSE) or "ranking" (softmax / BPR); early stopping on validation
            RMSE / NDCG@10.
        train_config: :class:`TrainConfig` (batch_size counts history windows); None: the registered
            default of this class's ``name`` (:mod:`textinterest.models.registry`).
        eval_batch_size: users per forward pass when scoring.
        name: label used in result tables.
    """

    name = "interest"
    artifact_kind = "interest"

    def __init__(
        self,
        config: InterestConfig | None = None,
        features: TextFeatures | None = None,
        task: str = "rating",
        train_config: TrainConfig | None = None,
        eval_batch_size: int = 256,
        name: str | None = None,
    ) -> None:
        super().__init__(task, train_config, eval_batch_size)
        self.config = config or InterestConfig()
        self.features = features
        self.prediction_times_: dict[Any, int] = {}
        self._item_history: ItemTextHistory | None = None
        if name:
            self.name = name

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """Rating and ranking; ``uses_text`` / ``sequential`` follow ``config.use_text`` / ``config.use_lstm``."""
        config = getattr(self, "config", None) or InterestConfig()
        return Capabilities(
            rating=True,
            ranking=True,
            uses_text=bool(config.use_text),
            sequential=bool(config.use_lstm),
            trains_with_torch=True,
        )

    # ------------------------------------------------------------------ data

    def fit(
        self, train: pd.DataFrame, val: pd.DataFrame | None = None, features: TextFeatures | None = None
    ) -> InterestRecommender:
        """Train on ``train`` (with its :class:`TextFeatures`); ``val`` drives early stopping."""
        if features is not None:
            self.features = features
        if self.config.use_text:
            if self.features is None:
                raise ValueError("InterestRecommender with use_text=True needs TextFeatures (features=...)")
            self.features.check(len(train))
        kept = self.prediction_times_
        if self.config.time_safe_text and val is not None and len(val) and TIME_COL in val.columns:
            self.set_prediction_times(val)  # early stopping sees validation scored as test will be: time-safe
        try:
            return super().fit(train, val)
        finally:
            self.prediction_times_ = kept

    def _build(self, train: pd.DataFrame) -> nn.Module:
        item_text, mean_text = self._prepare_arrays(self.features)
        seq, n_items = self.seq, len(self.item_index)
        lo, hi = self.rating_range_
        center, scale = (lo + hi) / 2.0, max((hi - lo) / 2.0, 1e-6)
        rated = np.isfinite(seq.rating)
        self._rating_feat = np.where(rated, (seq.rating - center) / scale, 0.0).astype(np.float32)
        self._rated = rated.astype(np.float32)
        self._windows = seq.windows(self.config.max_history)
        n_obs = int(rated.sum()) if self.task == "rating" else len(seq)
        self._penalty_scale = 1.0 / max(n_obs, 1)
        self._seen = seen_codes(seq)
        cfg = self.config = replace(  # a copy: the caller's config is left as it was
            self.config,
            n_users=len(self.user_index),
            n_items=n_items,
            text_dim=item_text.shape[1],
            global_mean=self.global_mean_ if self.task == "rating" else 0.0,
            rating_center=center,
            rating_scale=scale,
        )
        module = DynamicInterestModel(cfg)
        self._load_item_text(module, item_text, mean_text)
        self._init_switches(module)
        if cfg.kmeans_init and cfg.n_components > 1:
            self._kmeans_init(module)
        return module

    def _kmeans_init(self, module: DynamicInterestModel, max_steps: int = 20000) -> None:
        """Set the queries to k-means centroids of the initial step keys (a data-dependent start
        that keeps the K components from collapsing onto one)."""
        from sklearn.cluster import KMeans

        keys = self._initial_keys(module, max_steps)
        if keys is None:
            return
        km = KMeans(module.config.n_components, n_init=3, random_state=self.train_config.seed).fit(keys)
        with torch.no_grad():
            module.queries.copy_(torch.as_tensor(km.cluster_centers_, dtype=module.queries.dtype))
        module.train()

    def _init_switches(self, module: DynamicInterestModel) -> None:
        """Fill the buffers of the optional switches: the frozen residual base and the item counts of the gate."""
        cfg, seq = module.config, self.seq
        with torch.no_grad():
            if cfg.rare_item_gate:
                counts = np.bincount(seq.item, minlength=cfg.n_items)
                module.item_log_count[1:] = torch.as_tensor(np.log1p(counts), dtype=torch.float32)
            if cfg.residual_base != "none":
                if self.task != "rating":
                    raise ValueError(
                        f"InterestConfig.residual_base={cfg.residual_base!r} applies to the rating task, not "
                        f"task={self.task!r}"
                    )
                rated = np.isfinite(seq.rating)
                _, bu, bi = fit_biases(seq.user[rated], seq.item[rated], seq.rating[rated], cfg.n_users, cfg.n_items)
                module.base_user_bias[1:] = torch.as_tensor(bu, dtype=torch.float32)
                module.base_item_bias[1:] = torch.as_tensor(bi, dtype=torch.float32)

    def _initial_keys(self, module: DynamicInterestModel, max_steps: int) -> np.ndarray | None:
        """Step keys of the untrained module for k-means: every training step's key, or ``max_steps`` of
        them drawn at random (None when there are fewer steps than components).

        The keys come in the order of the concatenation of all windows' steps (subsampled in the order of
        the draw); only the windows holding a drawn step go through the encoder.
        """
        windows = self._windows
        steps = windows[:, 2] - windows[:, 1]  # (W,) keys per window
        total = int(steps.sum())
        if total < module.config.n_components:
            return None
        module.eval()
        rng = np.random.default_rng(self.train_config.seed)
        chosen = rng.choice(total, max_steps, replace=False) if total > max_steps else np.arange(total)
        ends = np.cumsum(steps)
        owner = np.searchsorted(ends, chosen, side="right")  # (S,) window of each drawn key
        needed = np.unique(owner)
        keys = []
        with torch.no_grad():
            for s in range(0, len(needed), 256):
                batch, _, mask, _ = self.history_batch(windows[needed[s : s + 256]])
                z, h = module.steps(batch)
                keys.append(module.step_keys(h, z)[torch.as_tensor(mask)].numpy())
        start = np.cumsum(steps[needed]) - steps[needed]  # where each needed window starts in the concatenation
        return np.concatenate(keys)[start[np.searchsorted(needed, owner)] + chosen - (ends[owner] - steps[owner])]

    @staticmethod
    def _load_item_text(module: DynamicInterestModel, item_text: np.ndarray, mean_text: np.ndarray) -> None:
        with torch.no_grad():
            module.item_text[0] = torch.as_tensor(mean_text)
            module.item_text[1:] = torch.as_tensor(item_text)

    def _prepare_arrays(self, feats: TextFeatures | None) -> tuple[np.ndarray, np.ndarray]:
        """Sorted per-step arrays and item text vectors from the training features.

        Item text vector = mean of the item's training reviews (or its metadata vector); for a
        training target the target review is left out of that mean (leave-one-out), so its
        own text never reaches its prediction.

        Returns:
            item_text (N, D) and the mean text vector (D,) used for unknown items.
        """
        seq = self.seq
        n, n_items = len(seq), len(self.item_index)
        if feats is not None and self.config.use_text:
            review = np.asarray(feats.review_vectors, dtype=np.float32)[seq.rows]  # (n, D) sorted order
            sentiment = (
                np.zeros(n, np.float32)
                if feats.sentiment is None
                else np.asarray(feats.sentiment, np.float32)[seq.rows]
            )
        else:
            review = np.zeros((n, 1), np.float32)
            sentiment = np.zeros(n, np.float32)
        self._texts = None if feats is None or feats.texts is None else [feats.texts[r] for r in seq.rows]
        D = review.shape[1]
        sums = group_sums(review, seq.item, n_items)  # (N, D) float64
        counts = np.bincount(seq.item, minlength=n_items).astype(np.float64)
        item_text = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)  # (N, D)
        mean_text = review.mean(0).astype(np.float32) if n else np.zeros(D, np.float32)
        has_meta = np.zeros(n_items, bool)
        if feats is not None and feats.item_vectors is not None and self.config.use_text:
            pos = self.item_index.index_of(np.asarray(feats.item_ids, dtype=object))
            ok = pos >= 0
            item_text[pos[ok]] = np.asarray(feats.item_vectors, np.float32)[ok]
            has_meta[pos[ok]] = True
        self._review, self._sentiment = review, sentiment
        self._item_history: ItemTextHistory | None = None
        if feats is not None and self.config.use_text and self.config.time_safe_text:
            # time-safe: a target's item vector averages the item's reviews written before the target
            # (its own review is never earlier than itself); metadata vectors stay as they are
            self._step_times = self._train_df[TIME_COL].to_numpy(dtype=np.int64)[seq.rows]
            self._item_history = ItemTextHistory(review, seq.item, self._step_times, n_items, has_meta, item_text)
            self._loo = self._item_history.mean_before(seq.item, self._step_times)
        else:
            others = counts[seq.item] - 1  # (n,) other training reviews of the step's item
            loo = np.empty((n, D), np.float32)
            for s in range(0, n, 65536):  # float64 arithmetic one block at a time: all (n, D) of it is large at scale
                part = slice(s, s + 65536)
                loo[part] = (sums[seq.item[part]] - review[part]) / np.maximum(others[part], 1)[:, None]
            loo[others == 0] = mean_text  # an item reviewed once looks like an unseen item
            loo[has_meta[seq.item]] = item_text[seq.item[has_meta[seq.item]]]
            self._loo = loo
        # per item, its training reviews (for the random leave-one-out profiles of negatives)
        self._item_order = np.argsort(seq.item, kind="stable")  # (n,) sorted steps grouped by item
        self._item_counts = counts.astype(np.int64)
        self._item_starts = np.concatenate([[0], np.cumsum(self._item_counts)[:-1]]).astype(np.int64)
        self._item_sums = sums.astype(np.float32)
        self._mean_text, self._has_meta, self._item_text = mean_text, has_meta, item_text
        return item_text, mean_text

    def _random_loo_text(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(len(items), D) text vectors of 0-based ``items`` with one random training review left out.

        A training target's own review is always left out of its item's vector; giving the
        negatives the same treatment keeps "one review fewer" from telling positives apart
        (which matters when items have few reviews). Single-review items get the mean vector,
        like a target whose item has no other review; metadata vectors are kept as they are.
        """
        counts = self._item_counts[items]
        offset = np.minimum((rng.random(len(items)) * counts).astype(np.int64), np.maximum(counts - 1, 0))
        dropped = self._review[self._item_order[self._item_starts[items] + offset]]  # (N', D)
        out = (self._item_sums[items] - dropped) / np.maximum(counts - 1, 1)[:, None]
        out[counts <= 1] = self._mean_text
        meta = self._has_meta[items]
        out[meta] = self._item_text[items[meta]]
        return out.astype(np.float32)

    def _set_features(self, features: TextFeatures) -> None:
        """Swap the text features of a fitted model (weights unchanged); used to probe leakage."""
        self.check_fitted()
        features.check(len(self._train_df))
        self.features = features
        item_text, mean_text = self._prepare_arrays(features)
        self._load_item_text(self.module, item_text, mean_text)

    def training_predictions(self) -> np.ndarray:
        """Scores of every training interaction exactly as the training loss sees them.

        Interaction t of a user is scored from the steps before t only, with the target item's
        leave-one-out text vector (history windows as in training).

        Returns:
            float array (len(train),) aligned with the rows of the training frame.
        """
        self.check_fitted()
        out = np.full(len(self.seq), np.nan)
        self.module.eval()
        with torch.no_grad():
            for s in range(0, len(self._windows), self.eval_batch_size):
                win = self._windows[s : s + self.eval_batch_size]
                batch, pos, mask, target = self.history_batch(win)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                values, gamma, _ = self.module.encode(batch)
                comps, _ = self.module.prefix_components(values, gamma)
                b, t = np.nonzero(target)
                rows = pos[b, t]
                score, _ = self.module.score_pairs(
                    comps[self.as_tensor(b), self.as_tensor(t)],
                    self.as_tensor(win[b, 0] + 1),
                    self.as_tensor(self.seq.item[rows] + 1),
                    torch.as_tensor(self._loo[rows], device=self.device),
                )
                out[self.seq.rows[rows]] = score.float().cpu().numpy()
        return out

    def history_batch(self, windows: np.ndarray) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, np.ndarray]:
        pos, mask, target = self.seq.pad(windows)  # (B, T) each
        f = lambda a: torch.as_tensor(np.where(mask, a[pos], 0.0), dtype=torch.float32)  # noqa: E731
        batch = {
            "review": torch.as_tensor(self._review[pos] * mask[..., None]),  # (B, T, D)
            "items": torch.as_tensor(np.where(mask, self.seq.item[pos] + 1, 0)),  # (B, T)
            "sentiment": f(self._sentiment),
            "rating": f(self._rating_feat),
            "rated": f(self._rated),
            "log_gap": f(self.seq.log_gap),
            "mask": torch.as_tensor(mask),
        }
        return batch, pos, mask, target

    def _batches(self, epoch: int, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        n_items = len(self.item_index)
        for win in shuffled_batches(self._windows, self.train_config.batch_size, rng):
            batch, pos, mask, target = self.history_batch(win)
            if self.task == "rating":
                target = target & np.isfinite(self.seq.rating[pos]) & mask
            b, t = np.nonzero(target)  # (R,)
            if len(b) == 0:
                continue
            hist = self._item_history
            if hist is not None:  # targets in time order: the negatives' text is looked up per time bucket
                by_time = np.argsort(self._step_times[pos[b, t]], kind="stable")
                b, t = b[by_time], t[by_time]
            rows = pos[b, t]
            batch.update(
                target_row=torch.as_tensor(b),
                target_step=torch.as_tensor(t),
                target_user=torch.as_tensor(win[b, 0] + 1),
                target_item=torch.as_tensor(self.seq.item[rows] + 1),
                target_text=torch.as_tensor(self._loo[rows]),
                target_rating=torch.as_tensor(np.nan_to_num(self.seq.rating[rows]), dtype=torch.float32),
            )
            if self.task == "ranking":
                cfg = self.config
                loo_neg = cfg.use_text and cfg.loo_negatives and hist is None
                if cfg.ranking_loss == "bpr":
                    neg = sample_negatives(rng, win[b, 0], self._seen, n_items)
                    batch["negative_item"] = torch.as_tensor(neg + 1)
                    if hist is not None:
                        batch["negative_text"] = torch.as_tensor(hist.mean_before(neg, self._step_times[rows]))
                    elif loo_neg:
                        batch["negative_text"] = torch.as_tensor(self._random_loo_text(neg, rng))
                else:
                    if 0 < cfg.n_negatives < n_items:
                        cand = np.sort(rng.choice(n_items, size=cfg.n_negatives, replace=False))
                    else:
                        cand = np.arange(n_items)
                    batch["cand"] = torch.as_tensor(cand + 1)
                    if hist is not None:  # (G, N', D): candidates' text at the earliest target time of each bucket
                        bounds = np.linspace(0, len(rows), min(TIME_BUCKETS, len(rows)) + 1).astype(np.int64)
                        tables = [hist.mean_before(cand, int(self._step_times[rows[lo]])) for lo in bounds[:-1]]
                        batch["cand_text"] = torch.as_tensor(np.stack(tables))
                        batch["buckets"] = torch.as_tensor(bounds)
                        batch["target_time"] = torch.as_tensor(self._step_times[rows])
                    elif loo_neg:
                        batch["cand_text"] = torch.as_tensor(self._random_loo_text(cand, rng))  # (N', D)
                    batch["seen"] = torch.as_tensor(seen_mask(self.seq, win[:, 0], n_items)[:, cand])  # (B, N')
            yield batch

    def _loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        values, gamma, _ = module.encode(batch)
        comps, _ = module.prefix_components(values, gamma)  # (B, T+1, C, H)
        b, t = batch["target_row"], batch["target_step"]
        comps_t = comps[b, t]  # (R, C, H): steps < t only
        users, items = batch["target_user"], batch["target_item"]
        pos, _ = module.score_pairs(comps_t, users, items, batch["target_text"])  # (R,)
        pos = pos.float()
        if self.task == "rating":
            loss = F.mse_loss(pos, batch["target_rating"])
            if self.config.residual_base != "none":  # pull the prediction toward the frozen base
                base = self.config.global_mean + module.base_term(users, items)
                loss = loss + self.config.residual_l2 * (pos - base).pow(2).mean()
        elif self.config.ranking_loss == "bpr":
            neg, _ = module.score_pairs(comps_t, users, batch["negative_item"], batch.get("negative_text"))
            loss = -F.logsigmoid(pos - neg.float()).mean()
        elif "buckets" in batch:  # time-safe candidate text, one table per time bucket of targets
            bounds = batch["buckets"].tolist()
            parts = [
                module.score_candidates(
                    comps_t[lo:hi], users[lo:hi], candidates=batch["cand"], candidate_text=batch["cand_text"][g]
                )[0]
                for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
            ]
            loss = self._softmax_loss(pos, torch.cat(parts, dim=0), batch)
        else:
            scores, _ = module.score_candidates(
                comps_t, users, candidates=batch["cand"], candidate_text=batch.get("cand_text")
            )  # (R, N')
            loss = self._softmax_loss(pos, scores, batch)
        loss = loss + self._penalty_scale * module.cf_penalty()
        if self.config.assign_balance > 0:
            loss = loss + self.config.assign_balance * module.assignment_penalty(gamma, batch["mask"])
        return loss

    @staticmethod
    def _softmax_loss(pos: torch.Tensor, scores: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the target (column 0) against the candidates, the user's train items masked."""
        scores = scores.float().masked_fill(
            batch["seen"][batch["target_row"]], -1e9
        )  # the user's train items, target included
        logits = torch.cat([pos[:, None], scores], dim=1)  # (R, 1 + N'); column 0 = target (leave-one-out text)
        return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device))

    def final_state(
        self, users: np.ndarray, times: np.ndarray | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Components after each user's history; with ``times`` (B,) the history items' text is taken at those times."""
        win = self.seq.last_window(users, self.config.max_history)
        batch, pos, mask, _ = self.history_batch(win)
        if times is not None and self._item_history is not None:
            step_times = np.broadcast_to(np.asarray(times, dtype=np.int64)[:, None], pos.shape)
            text = self._item_history.mean_before(self.seq.item[pos[mask]], step_times[mask])  # (S, D)
            full = np.zeros((*pos.shape, text.shape[1]), np.float32)
            full[mask] = text
            batch["item_text"] = torch.as_tensor(full)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        comps, _, _ = self.module.final_components(batch)
        return comps, batch

    def _predict_idx(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._at_prediction_times(users, items)

    def _score_idx(self, users: np.ndarray) -> np.ndarray:
        return self._at_prediction_times(users, None)

    def _score_now(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        comps, _ = self.final_state(users)
        user_t = self.as_tensor(users + 1)
        if items is None:
            out, _ = self.module.score_candidates(comps, user_t)
        else:
            out, _ = self.module.score_pairs(comps, user_t, self.as_tensor(items + 1))
        return out.float().cpu().numpy()

    # ------------------------------------------------------------------ inspection

    def history_length(self, user_ids: Sequence[Any]) -> np.ndarray:
        """Number of training reviews of each user (0 for unknown users)."""
        self.check_fitted()
        users = self.user_index.index_of(np.asarray(user_ids, dtype=object))
        return np.where(users >= 0, self.seq.lengths[np.maximum(users, 0)], 0)

    def assignments(self, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Step -> component assignments gamma for the (last ``max_history``) training steps.

        Args:
            users: 0-based user positions; None = every training user.

        Returns:
            rows (S,) positions in the training frame of the steps, gamma (S, K).
        """
        self.check_fitted()
        users = np.arange(len(self.user_index)) if users is None else np.asarray(users)
        rows, gammas = [], []
        self.module.eval()
        with torch.no_grad():
            for s in range(0, len(users), self.eval_batch_size):
                win = self.seq.last_window(users[s : s + self.eval_batch_size], self.config.max_history)
                batch, pos, mask, _ = self.history_batch(win)
                _, gamma, _ = self.module.encode({k: v.to(self.device) for k, v in batch.items()})
                rows.append(self.seq.rows[pos[mask]])
                gammas.append(gamma.float().cpu().numpy()[mask])
        return np.concatenate(rows), np.concatenate(gammas)

    def final_components(self, user_ids: Sequence[Any]) -> np.ndarray:
        """(B, C, H) components of each user's whole training history (see :func:`component_names`)."""
        self.check_fitted()
        users = self.user_index.index_of(np.asarray(user_ids, dtype=object))
        self.module.eval()
        with torch.no_grad():
            return self.final_state(users)[0].float().cpu().numpy()

    def explain(self, user_id: Any, item_id: Any, top_n: int = 3, **kwargs: Any) -> dict[str, Any]:
        """Why ``item_id`` scores what it does for ``user_id`` (see :func:`textinterest.models.recommend.explain`)."""
        from textinterest.models.recommend import explain

        return explain(self, user_id, item_id, top_n=top_n, **kwargs)

    def text_arrays(self) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """Review vectors (S, D), sentiment (S,) and texts of the training steps, in ``seq`` order."""
        self.check_fitted()
        return self._review, self._sentiment, self._texts

    # ------------------------------------------------------------------ saving

    def saved_settings(self) -> dict[str, Any]:
        """The whole :class:`InterestConfig` (JSON-able)."""
        return asdict(self.config)

    @classmethod
    def from_saved(cls, settings: dict[str, Any], **common: Any) -> InterestRecommender:
        """An unfitted model with the saved :class:`InterestConfig` (the weights are loaded afterwards).

        ``common``: ``task``, ``train_config``, ``eval_batch_size``, ``name`` and ``own_settings`` (unused here),
        as :meth:`TorchRecommender.from_saved <textinterest.models.torch_base.TorchRecommender.from_saved>`.
        """
        common.pop("own_settings", None)
        return cls(InterestConfig(**settings), **common)

    def use_text_encoder(self, encoder: Any) -> None:
        """Called on loading with the checked text encoder; the frozen-encoder model needs nothing from it."""

    def _module_for_saved_weights(self, train: pd.DataFrame) -> nn.Module:
        saved = self.config
        self.config = replace(saved, kmeans_init=False)  # the weights come from the file
        try:
            module = self._build(train)
        finally:
            self.config = saved
        module.config = saved
        return module
