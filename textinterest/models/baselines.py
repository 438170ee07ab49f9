"""Baselines: global mean, popularity and Surprise algorithms behind one DataFrame API.
(Above 500 lines on purpose: every Surprise algorithm's full-catalogue scoring, one adapter.)

Every model implements :class:`textinterest.models.base.Recommender`: ``fit(train_df) -> self``
(a validation table, if given, is not used) and, where it applies, ``predict(df) -> np.ndarray``
(ratings) and ``score_items(user_ids) -> np.ndarray`` (one row of scores per user over
``model.item_index``, for full ranking). ``model.capabilities.rating`` / ``.ranking`` say which
apply; :func:`run_baselines` leaves out the metrics that do not.

Surprise models are trained with ``Dataset.load_from_df`` + ``build_full_trainset`` on the
rated training rows (rows with a NaN rating are left out and counted). ``predict`` calls
Surprise's own ``algo.predict``, so unknown users and items get Surprise's fallback
(the baseline part of the estimate, or the global mean when Surprise reports the prediction
impossible); ``n_fallback_`` counts rows whose user or item was unknown, ``n_impossible_``
the rows Surprise marked ``was_impossible``.

``score_items`` computes Surprise's estimates for all items at once from the fitted model's
parameters (unclipped, so that scores above the rating scale still rank):

- BaselineOnly: ``mu + b_u + b_i``.
- SVD: ``mu + b_u + b_i + p_u . q_i`` (``p_u . q_i`` only, when ``biased=False``).
- SVDpp: ``mu + b_u + b_i + q_i . (p_u + |I_u|^-1/2 sum_{j in I_u} y_j)``.
- NMF: ``p_u . q_i`` (plus biases when ``biased=True``).
- KNNBaseline: the baseline plus the similarity-weighted residuals of the ``k`` most
  similar neighbours who rated the item (positive similarities only, ``min_k`` respected),
  vectorized over a dense user x item matrix; ties in similarity are broken as Surprise
  breaks them (training-row order, which the adapter makes follow inner ids). Ranking is
  left out when that dense matrix would exceed ``KNN_DENSE_LIMIT`` cells.
- NormalPredictor: seeded random scores (a random ranking).

Items in ``item_index`` that Surprise never saw (only unrated training rows) get Surprise's
estimate for an unknown item. Users Surprise does not know get Surprise's estimate for an
unknown user where it depends on the item (``mu + b_i``), else are ranked by training
popularity.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from textinterest.constants import ITEM_COL, RANKING_KS, RATING_COL, RATING_SCALE, SEED, USER_COL
from textinterest.evaluation import IdIndex, evaluate_ranking, mae, rmse
from textinterest.models.base import Capabilities, Recommender

__all__ = [
    "GlobalMean",
    "Popularity",
    "SurpriseModel",
    "SURPRISE_ALGORITHMS",
    "DEFAULT_MODELS",
    "make_model",
    "run_baselines",
    "cross_validate_ratings",
]

# Surprise algorithms the adapter accepts; those in RANKABLE also implement score_items.
SURPRISE_ALGORITHMS = (
    "BaselineOnly",
    "SVD",
    "SVDpp",
    "KNNBaseline",
    "NMF",
    "NormalPredictor",
    "KNNBasic",
    "KNNWithMeans",
    "KNNWithZScore",
    "SlopeOne",
    "CoClustering",
)
_RANKABLE = ("BaselineOnly", "SVD", "SVDpp", "KNNBaseline", "NMF", "NormalPredictor")
_SEEDED = ("SVD", "SVDpp", "NMF", "CoClustering")  # algorithms with a random_state parameter
_QUIET = ("BaselineOnly", "KNNBaseline", "KNNBasic", "KNNWithMeans", "KNNWithZScore")  # verbose=True by default
DEFAULT_MODELS = ("GlobalMean", "Popularity", "BaselineOnly", "SVD", "SVDpp", "KNNBaseline", "NMF", "NormalPredictor")
KNN_DENSE_LIMIT = 50_000_000  # max n_users * n_items for the vectorized KNNBaseline ranking
KNN_BYTES_PER_PAIR = 24  # Surprise's KNN similarity build: about 24 bytes per pair of users (or items)


def knn_memory_limit_bytes() -> float:
    """Largest similarity build a Surprise KNN may start: half the machine's memory (inf when unknown)."""
    from textinterest.utils import memory_gib

    total = memory_gib()
    return float("inf") if total is None else total * 2**30 / 2


_KNN_BATCH_CELLS = 5_000_000  # neighbours x items x users per vectorized KNN block


class _Base(Recommender):
    """Shared fitting bookkeeping: id indices over *all* training rows and item counts."""

    name: str = "base"
    capabilities = Capabilities(rating=True, ranking=True)

    def __init__(self, rating_scale: tuple[float, float] = RATING_SCALE):
        self.rating_scale = (float(rating_scale[0]), float(rating_scale[1]))
        self.n_fallback_ = 0
        self.n_impossible_ = 0
        self.n_unrated_dropped_ = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _prepare(self, train: pd.DataFrame, need_ratings: bool = True) -> pd.DataFrame:
        """Index users and items of ``train``; return its rated rows (user, item, rating)."""
        if not isinstance(train, pd.DataFrame):
            raise TypeError(f"{self.name}.fit expects a pandas DataFrame, got {type(train).__name__}")
        missing = [c for c in (USER_COL, ITEM_COL) if c not in train.columns]
        if missing:
            raise ValueError(f"{self.name}.fit: training table lacks column(s) {missing}")
        if len(train) == 0:
            raise ValueError(f"{self.name}.fit: empty training table")
        self.user_index = IdIndex(train[USER_COL].to_numpy())
        self.item_index = IdIndex(train[ITEM_COL].to_numpy())
        self.item_counts_ = np.bincount(
            self.item_index.index_of(train[ITEM_COL].to_numpy()), minlength=len(self.item_index)
        ).astype(np.float64)
        if RATING_COL in train.columns:
            ratings = pd.to_numeric(train[RATING_COL], errors="raise")
            rated = ratings.notna().to_numpy()
        else:
            ratings, rated = None, np.zeros(len(train), dtype=bool)
        self.n_unrated_dropped_ = int((~rated).sum())
        if not need_ratings:
            return train.iloc[:0]
        if not rated.any():
            raise ValueError(f"{self.name}.fit: no rated training rows (column {RATING_COL!r})")
        out = pd.DataFrame(
            {
                USER_COL: train[USER_COL].to_numpy()[rated],
                ITEM_COL: train[ITEM_COL].to_numpy()[rated],
                RATING_COL: ratings.to_numpy(dtype=np.float64)[rated],
            }
        )
        lo, hi = self.rating_scale
        outside = (out[RATING_COL] < lo) | (out[RATING_COL] > hi)
        if outside.any():
            first = int(np.flatnonzero(outside.to_numpy())[0])
            raise ValueError(
                f"{self.name}.fit: {int(outside.sum())} rating(s) outside rating_scale {self.rating_scale} "
                f"(first: {out[RATING_COL].iloc[first]} at training row {train.index[np.flatnonzero(rated)[first]]!r})"
            )
        self.global_mean_ = float(out[RATING_COL].mean())
        return out

    def check_fitted(self) -> None:
        if not hasattr(self, "item_index"):
            raise RuntimeError(f"{self.name}: call fit() first")

    def _popularity_rows(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.item_counts_, (n, len(self.item_counts_))).copy()


class GlobalMean(_Base):
    """Predicts the mean training rating for every pair. Ranking does not apply (constant).

    Args:
        rating_scale: (low, high) bounds of the ratings.
    """

    name = "GlobalMean"
    capabilities = Capabilities(rating=True, ranking=False)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> GlobalMean:
        """Store the mean of the rated training rows (``val`` and ``inputs`` are not used)."""
        self._prepare(train)
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """The training mean for every row of ``df``; no row is a fallback."""
        self.check_fitted()
        self.n_fallback_ = 0
        return np.full(len(df), self.global_mean_)


class Popularity(_Base):
    """Ranks items by their number of training interactions (rated or not); no ratings.

    Args:
        rating_scale: unused, kept for a uniform constructor.
    """

    name = "Popularity"
    capabilities = Capabilities(rating=False, ranking=True)

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> Popularity:
        """Count training interactions per item (``val`` and ``inputs`` are not used)."""
        self._prepare(train, need_ratings=False)
        return self

    def score_items(self, user_ids: Sequence) -> np.ndarray:
        """The item counts, the same row for every user."""
        self.check_fitted()
        return self._popularity_rows(len(user_ids))


class SurpriseModel(_Base):
    """A Surprise algorithm behind the DataFrame API.

    Args:
        name: one of ``SURPRISE_ALGORITHMS`` (e.g. "SVD", "KNNBaseline").
        seed: ``random_state`` of algorithms that take one (unless given in ``params``);
            the seed of NormalPredictor's draws. ``None`` = unseeded.
        rating_scale: (low, high); predictions are clipped to it, as Surprise does.
        **params: passed to the Surprise class (e.g. ``n_factors=50``,
            ``sim_options={"name": "pearson_baseline"}``).
    """

    def __init__(
        self, name: str, *, seed: int | None = SEED, rating_scale: tuple[float, float] = RATING_SCALE, **params: Any
    ):
        if name not in SURPRISE_ALGORITHMS:
            raise ValueError(f"unknown Surprise algorithm {name!r}; valid values: {', '.join(SURPRISE_ALGORITHMS)}")
        super().__init__(rating_scale)
        self.name = name
        self.seed = seed
        self.params = dict(params)
        if name in _SEEDED:
            self.params.setdefault("random_state", seed)
        if name in _QUIET:
            self.params.setdefault("verbose", False)
        self.capabilities = Capabilities(rating=True, ranking=name in _RANKABLE)

    @property
    def _user_based(self) -> bool:
        return bool(self.params.get("sim_options", {}).get("user_based", True))

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> SurpriseModel:
        """Fit on the rated rows of ``train`` (NaN ratings left out, ``n_unrated_dropped_``).

        Args:
            train: training interactions.
            val: not used (Surprise algorithms have no early stopping).
            **inputs: not used.
        """
        import surprise

        rated = self._prepare(train)
        for cache in ("_implicit", "_knn_dense"):
            self.__dict__.pop(cache, None)
        if self.name.startswith("KNN"):
            # Group rows by user, keeping first-appearance order of users and the row order
            # within a user: inner user ids stay the same, and every item's list of raters
            # is in inner-id order, which is the tie-break order score_items reproduces.
            codes = pd.factorize(rated[USER_COL], sort=False)[0]
            rated = rated.iloc[np.argsort(codes, kind="stable")]
        reader = surprise.Reader(rating_scale=self.rating_scale)
        data = surprise.Dataset.load_from_df(rated[[USER_COL, ITEM_COL, RATING_COL]], reader)
        trainset = data.build_full_trainset()
        if self.name.startswith("KNN"):
            n = trainset.n_users if self._user_based else trainset.n_items
            need, limit = KNN_BYTES_PER_PAIR * float(n) ** 2, knn_memory_limit_bytes()
            if need > limit:
                what = "users" if self._user_based else "items"
                raise MemoryError(
                    f"{self.name} on {n:,} {what} would need about {need / 2**30:,.1f} GiB for its similarity "
                    f"matrix (~{KNN_BYTES_PER_PAIR} B x {what}^2), more than the {limit / 2**30:,.1f} GiB allowed "
                    f"(half of this machine's memory); leave it out (e.g. --models without {self.name}) or "
                    f"sample fewer {what}"
                )
        self.algo_ = getattr(surprise, self.name)(**self.params)
        start = time.perf_counter()
        self.algo_.fit(trainset)
        self.fit_seconds_ = time.perf_counter() - start
        self.trainset_ = trainset
        self._rated = rated
        # Positions in user_index / item_index -> Surprise inner ids (-1: unknown to Surprise).
        inner_users = IdIndex([trainset.to_raw_uid(u) for u in range(trainset.n_users)])
        inner_items = IdIndex([trainset.to_raw_iid(i) for i in range(trainset.n_items)])
        self._inner_users = inner_users
        self._inner_items = inner_items
        self._item_inner = inner_items.index_of(self.item_index.ids)
        self._rng = np.random.default_rng(self.seed)
        if self.name == "KNNBaseline" and self._user_based and trainset.n_users * trainset.n_items > KNN_DENSE_LIMIT:
            self.capabilities = Capabilities(rating=True, ranking=False)
        return self

    # ----------------------------------------------------------------- rating prediction

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Surprise's ``algo.predict`` (clipped) for each (user, item) row of ``df``.

        Sets ``n_fallback_`` (rows with a user or item unknown to the model) and
        ``n_impossible_`` (rows Surprise answered with its default prediction).
        """
        self.check_fitted()
        users = df[USER_COL].to_numpy()
        items = df[ITEM_COL].to_numpy()
        state = None
        if self.name == "NormalPredictor" and self.seed is not None:
            # NormalPredictor draws from numpy's global generator: seed it for this call only.
            state = np.random.get_state()
            np.random.seed(self.seed)
        try:
            preds = [self.algo_.predict(u, i) for u, i in zip(users, items)]
        finally:
            if state is not None:
                np.random.set_state(state)
        known = (self._inner_users.index_of(users) >= 0) & (self._inner_items.index_of(items) >= 0)
        self.n_fallback_ = int((~known).sum())
        self.n_impossible_ = int(sum(p.details.get("was_impossible", False) for p in preds))
        return np.array([p.est for p in preds], dtype=np.float64)

    # ----------------------------------------------------------------- full ranking

    def score_items(self, user_ids: Sequence) -> np.ndarray:
        """Surprise's (unclipped) estimates for every item of ``item_index``.

        Args:
            user_ids: raw user ids.

        Returns:
            (len(user_ids), len(item_index)) float64 scores.
        """
        self.check_fitted()
        if not self.capabilities.ranking:
            raise NotImplementedError(f"{self.name}: score_items is not available for this model/size")
        inner = self._inner_users.index_of(np.asarray(user_ids, dtype=object))
        algo, ts = self.algo_, self.trainset_
        mu = ts.global_mean
        n, n_inner_items = inner.size, ts.n_items
        known = inner >= 0
        ku = inner[known]
        if self.name == "NormalPredictor":
            return self._rng.normal(mu, algo.sigma, size=(n, len(self.item_index)))

        biased = self.name in ("BaselineOnly", "SVDpp", "KNNBaseline") or bool(
            self.params.get("biased", self.name == "SVD")
        )
        block = np.empty((n, n_inner_items))  # (B, n_inner_items): Surprise's estimate per known item
        unknown_item = np.full(n, mu)  # Surprise's estimate for an item it never saw
        if biased:
            bu = np.asarray(algo.bu)
            bi = np.asarray(algo.bi)
            block[:] = mu + bi[None, :]
            block[known] += bu[ku][:, None]
            unknown_item[known] += bu[ku]
        if known.any():
            if self.name in ("SVD", "NMF"):
                factors = np.asarray(algo.pu)[ku] @ np.asarray(algo.qi).T  # (B_known, n_inner_items)
                block[known] = block[known] + factors if biased else factors
            elif self.name == "SVDpp":
                implicit = self._implicit_rows(ku) @ np.asarray(algo.yj)  # (B_known, F)
                block[known] += (np.asarray(algo.pu)[ku] + implicit) @ np.asarray(algo.qi).T
            elif self.name == "KNNBaseline":
                block[known] += self._knn_adjustment(ku)
        out = np.empty((n, len(self.item_index)))
        seen = self._item_inner >= 0
        out[:, seen] = block[:, self._item_inner[seen]]
        out[:, ~seen] = unknown_item[:, None]
        if not biased and (~known).any():
            out[~known] = self._popularity_rows(int((~known).sum()))
        return out

    def _implicit_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """Rows ``|I_u|^-1/2 * 1[j in I_u]`` of the SVD++ implicit-feedback term."""
        if not hasattr(self, "_implicit"):
            ts = self.trainset_
            u, i, _ = self._rating_arrays()
            counts = np.bincount(u, minlength=ts.n_users).astype(np.float64)
            weights = 1.0 / np.sqrt(counts[u])
            self._implicit = sp.csr_matrix((weights, (u, i)), shape=(ts.n_users, ts.n_items))
        return self._implicit[users]

    def _rating_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inner user, inner item, rating) of every training rating."""
        rated = self._rated
        return (
            self._inner_users.index_of(rated[USER_COL].to_numpy()),
            self._inner_items.index_of(rated[ITEM_COL].to_numpy()),
            rated[RATING_COL].to_numpy(dtype=np.float64),
        )

    def _knn_adjustment(self, users: np.ndarray) -> np.ndarray:
        """KNNBaseline's neighbourhood term for known inner users, all inner items: (B, n_items)."""
        algo, ts = self.algo_, self.trainset_
        k, min_k = int(algo.k), int(algo.min_k)
        sim = np.asarray(algo.sim)
        mu = ts.global_mean
        bu, bi = np.asarray(algo.bu), np.asarray(algo.bi)
        if not self._user_based:
            return self._knn_item_based(users, sim, k, min_k)
        # Dense residuals r_vi - (mu + b_v + b_i) and the rated mask, users x items.
        if not hasattr(self, "_knn_dense"):
            u, i, r = self._rating_arrays()
            resid = np.zeros((ts.n_users, ts.n_items), dtype=np.float64)
            rated = np.zeros((ts.n_users, ts.n_items), dtype=bool)
            resid[u, i] = r - (mu + bu[u] + bi[i])
            rated[u, i] = True
            self._knn_dense = (resid, rated)
        resid, rated = self._knn_dense
        n_users, n_items = rated.shape
        # Items with at most k raters take every positive neighbour: plain matrix products.
        # Only the others need the per-user "first k raters" selection.
        n_raters = rated.sum(axis=0)
        heavy, light = np.flatnonzero(n_raters > k), np.flatnonzero(n_raters <= k)
        out = np.zeros((users.size, n_items))
        s_all = sim[users]  # (B, V)
        s_pos = np.where(s_all > 0, s_all, 0.0)
        num = s_pos @ resid[:, light]
        den = s_pos @ rated[:, light]
        count = (s_all > 0) @ rated[:, light].astype(np.int64)
        ok = (count >= min_k) & (den > 0)
        out[:, light] = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
        if heavy.size == 0:
            return out
        resid_h, rated_h = resid[:, heavy], rated[:, heavy]
        step = max(1, _KNN_BATCH_CELLS // max(1, n_users * heavy.size))
        for start in range(0, users.size, step):
            s = s_all[start : start + step]  # (B, V)
            # Neighbours by decreasing similarity; equal similarities keep inner-id order,
            # which is the order of every item's rater list (see fit).
            order = np.argsort(-s, axis=1, kind="stable")  # (B, V)
            s_sorted = np.take_along_axis(s, order, axis=1)
            n_pos = int((s_sorted > 0).sum(axis=1).max())  # neighbours past this never count
            if n_pos == 0:
                continue
            order, s_sorted = order[:, :n_pos], s_sorted[:, :n_pos]
            m = rated_h[order]  # (B, V', I_heavy): rated by the v-th most similar neighbour
            use = m & (np.cumsum(m, axis=1, dtype=np.int32) <= k) & (s_sorted > 0)[:, :, None]
            w = use * s_sorted[:, :, None]  # (B, V', I_heavy)
            num = np.einsum("bvi,bvi->bi", w, resid_h[order])
            den = w.sum(axis=1)
            ok = (use.sum(axis=1) >= min_k) & (den > 0)
            out[start : start + step, heavy] = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
        return out

    def _knn_item_based(self, users: np.ndarray, sim: np.ndarray, k: int, min_k: int) -> np.ndarray:
        """Item-based KNNBaseline term; one vectorized step per user over all items."""
        algo, ts = self.algo_, self.trainset_
        mu = ts.global_mean
        bu, bi = np.asarray(algo.bu), np.asarray(algo.bi)
        out = np.zeros((users.size, ts.n_items))
        for row, user in enumerate(users):
            pairs = ts.ur[int(user)]  # neighbours in Surprise's tie-break order
            items = np.fromiter((j for j, _ in pairs), dtype=np.int64, count=len(pairs))
            ratings = np.fromiter((x for _, x in pairs), dtype=np.float64, count=len(pairs))
            resid = ratings - (mu + bi[items] + bu[user])  # (J,)
            s = sim[:, items]  # (I, J)
            order = np.argsort(-s, axis=1, kind="stable")[:, :k]
            s_top = np.take_along_axis(s, order, axis=1)
            pos = s_top > 0
            w = np.where(pos, s_top, 0.0)
            num = (w * resid[order]).sum(axis=1)
            den = w.sum(axis=1)
            ok = (pos.sum(axis=1) >= min_k) & (den > 0)
            out[row] = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
        return out


def make_model(
    name: str, *, seed: int | None = SEED, rating_scale: tuple[float, float] = RATING_SCALE, **params: Any
) -> _Base:
    """A baseline by name: "GlobalMean", "Popularity" or one of ``SURPRISE_ALGORITHMS``."""
    if name == "GlobalMean":
        return GlobalMean(rating_scale)
    if name == "Popularity":
        return Popularity(rating_scale)
    if name in SURPRISE_ALGORITHMS:
        return SurpriseModel(name, seed=seed, rating_scale=rating_scale, **params)
    valid = ("GlobalMean", "Popularity") + SURPRISE_ALGORITHMS
    raise ValueError(f"unknown baseline {name!r}; valid values: {', '.join(valid)}")


def run_baselines(
    split,
    models: Sequence[str | _Base] | None = None,
    ks: Sequence[int] = RANKING_KS,
    seed: int | None = SEED,
    *,
    part: str = "test",
    rating_scale: tuple[float, float] = RATING_SCALE,
    batch_size: int = 1024,
) -> list[dict]:
    """Fit each baseline on ``split.train`` and evaluate it on ``split.test``.

    Rating metrics (RMSE, MAE) use the evaluated rows that have a rating. Ranking metrics
    (HR@K, NDCG@K, MRR) rank, for every evaluated row, all training items minus the user's
    training items (:func:`textinterest.evaluation.evaluate_ranking`); users or items unseen
    in training count as misses. Metrics that do not apply to a model are absent.

    Args:
        split: a :class:`textinterest.datasets.splits.Split`.
        models: names (see :func:`make_model`) or fitted-to-be model objects; default
            ``DEFAULT_MODELS``.
        ks: ranking cutoffs.
        seed: seed of the random algorithms.
        part: "test" or "val".
        rating_scale: (low, high) of the ratings.
        batch_size: users per scoring batch.

    Returns:
        One dict per model: ``{"model", "rmse", "mae", "hr@K", "ndcg@K", "mrr",
        "n_fallback", "n_rated", "n_cases", "n_unknown_user", "n_unknown_target",
        "fit_seconds", "eval_seconds"}`` (those that apply).
    """
    if part not in ("test", "val"):
        raise ValueError(f"part must be 'test' or 'val', got {part!r}")
    target = getattr(split, part)
    models = DEFAULT_MODELS if models is None else models
    rows = []
    for spec in models:
        model = make_model(spec, seed=seed, rating_scale=rating_scale) if isinstance(spec, str) else spec
        start = time.perf_counter()
        model.fit(split.train)
        row: dict = {"model": model.name, "fit_seconds": time.perf_counter() - start}
        start = time.perf_counter()
        if model.capabilities.rating and RATING_COL in target.columns:
            rated = target[target[RATING_COL].notna()]
            if len(rated):
                pred = model.predict(rated)
                truth = rated[RATING_COL].to_numpy(dtype=np.float64)
                row.update(
                    rmse=rmse(truth, pred),
                    mae=mae(truth, pred),
                    n_rated=int(len(rated)),
                    n_fallback=int(model.n_fallback_),
                )
        if model.capabilities.ranking and len(target):
            user_ids = model.user_index.ids

            def score_fn(positions: np.ndarray, _model=model, _ids=user_ids) -> np.ndarray:
                return _model.score_items(_ids[positions])

            result = evaluate_ranking(
                score_fn, split.train, target, model.user_index, model.item_index, ks=ks, batch_size=batch_size
            )
            row.update({key: value for key, value in result.items() if key not in ("n_users", "n_items")})
        row["eval_seconds"] = time.perf_counter() - start
        rows.append(row)
    return rows


def cross_validate_ratings(
    df: pd.DataFrame,
    models: Sequence[str | _Base],
    n_splits: int = 5,
    seed: int | None = SEED,
    *,
    rating_scale: tuple[float, float] = RATING_SCALE,
) -> dict[str, dict[str, list[float]]]:
    """K-fold RMSE/MAE of rating models, with Surprise ``cross_validate`` semantics.

    The folds are those of ``surprise.model_selection.KFold(n_splits, random_state=seed)``
    (:func:`textinterest.datasets.splits.kfold_splits`); each model is fitted on the other
    folds and predicts the held-out fold (clipped, Surprise's fallbacks for unknown ids).

    Args:
        df: rated interactions (user, item, rating).
        models: model names (see :func:`make_model`) or model objects (refitted per fold).
        n_splits: number of folds.
        seed: fold shuffling seed, and the seed of the random algorithms.
        rating_scale: (low, high) of the ratings.

    Returns:
        ``{model name: {"rmse": [per fold], "mae": [...], "fit_seconds": [...],
        "n_fallback": [...]}}``.
    """
    from textinterest.datasets.splits import kfold_splits

    if RATING_COL not in df.columns or df[RATING_COL].isna().any():
        raise ValueError(f"cross_validate_ratings needs a {RATING_COL!r} value on every row")
    out: dict[str, dict[str, list[float]]] = {}
    for fold in kfold_splits(df, n_splits, seed=seed):
        truth = fold.test[RATING_COL].to_numpy(dtype=np.float64)
        for spec in models:
            model = make_model(spec, seed=seed, rating_scale=rating_scale) if isinstance(spec, str) else spec
            if not model.capabilities.rating:
                raise ValueError(f"{model.name} does not predict ratings")
            start = time.perf_counter()
            model.fit(fold.train)
            fit_seconds = time.perf_counter() - start
            pred = model.predict(fold.test)
            scores = out.setdefault(model.name, {"rmse": [], "mae": [], "fit_seconds": [], "n_fallback": []})
            scores["rmse"].append(rmse(truth, pred))
            scores["mae"].append(mae(truth, pred))
            scores["fit_seconds"].append(fit_seconds)
            scores["n_fallback"].append(int(model.n_fallback_))
    return out
