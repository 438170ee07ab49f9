"""Cornac models behind the house recommender interface (optional extra ``peers``: ``pip install cornac``).

:class:`CornacRecommender` wraps one Cornac model (``fit(train_set)``, ``score(user_idx, item_idx=None)``)
so that it speaks ``fit(train, val=None)``, ``predict(df)``, ``score_items(user_ids)`` with
``user_index`` / ``item_index`` like every other model here, and is scored by the same metric code.

Models (``CORNAC_MODELS``):

- ``bpr``: Bayesian personalised ranking (Rendle et al. 2009); ranking only.
- ``mf``: biased matrix factorisation trained by SGD on ratings; ratings, and ranking by the
  predicted rating.
- ``hft``: Hidden Factors and hidden Topics (McAuley & Leskovec 2013): MF whose item factors are
  tied to an LDA-like topic model of the item's review text; ratings and ranking.
- ``ctr``: Collaborative Topic Regression (Wang & Blei 2011): implicit-feedback MF whose item
  factors are centred on the item's topic proportions; ranking.

Cornac's CDL, ConvMF, NARRE and CDR need TensorFlow, which is not part of this stack (a CPU
TensorFlow wheel alone is larger than the rest of the environment); they are not wrapped.

Text (HFT, CTR): an item's document is the concatenation of its *training* review texts (the
validation and test reviews are never read), tokenised by Cornac's ``BaseTokenizer`` with English
stop words removed, vocabulary capped at ``max_vocab``.

Unknown users / items: ``predict`` returns the training mean rating (counted in ``n_fallback_``);
``score_items`` scores an unknown user by training popularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, RATING_COL, USER_COL
from textinterest.evaluation import IdIndex
from textinterest.models.base import Capabilities, Recommender

__all__ = ["CORNAC_MODELS", "CornacRecommender", "cornac_available"]

# name -> (Cornac class, tasks it serves, default parameters, needs item text)
CORNAC_MODELS: dict[str, tuple[str, tuple[str, ...], dict[str, Any], bool]] = {
    "bpr": ("BPR", ("ranking",), {"k": 10, "max_iter": 100, "learning_rate": 0.01, "lambda_reg": 0.01}, False),
    "mf": ("MF", ("rating", "ranking"), {"k": 10, "max_iter": 20, "learning_rate": 0.01, "lambda_reg": 0.02}, False),
    "hft": (
        "HFT",
        ("rating", "ranking"),
        {"k": 10, "max_iter": 20, "grad_iter": 20, "lambda_text": 0.1, "l2_reg": 0.001},
        True,
    ),
    "ctr": ("CTR", ("ranking",), {"k": 50, "lambda_u": 0.01, "lambda_v": 0.01, "max_iter": 50}, True),
}


def cornac_available() -> tuple[bool, str]:
    """(True, version) when Cornac imports, else (False, the reason)."""
    try:
        import cornac
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available", with its reason
        return False, f"cornac is not installed ({type(exc).__name__}: {exc}); pip install 'textinterest[peers]'"
    return True, str(cornac.__version__)


class CornacRecommender(Recommender):
    """One Cornac model fitted on a canonical interactions frame.

    Args:
        model: a key of ``CORNAC_MODELS``.
        task: "rating" or "ranking" (must be one the model serves).
        seed: Cornac's seed (single-threaded training, so runs repeat exactly).
        text_col: review text column read by the text models (blank bodies fall back to ``summary``).
        max_vocab: vocabulary size of the text models.
        **params: Cornac constructor arguments overriding ``CORNAC_MODELS`` defaults (e.g. ``k=20``).
    """

    def __init__(
        self,
        model: str = "bpr",
        task: str = "ranking",
        *,
        seed: int = 0,
        text_col: str = "text",
        max_vocab: int = 5000,
        **params: Any,
    ) -> None:
        if model not in CORNAC_MODELS:
            raise ValueError(f"unknown Cornac model {model!r}; valid values: {', '.join(CORNAC_MODELS)}")
        cls_name, tasks, defaults, needs_text = CORNAC_MODELS[model]
        if task not in tasks:
            raise ValueError(f"cornac {model} serves task(s) {tasks}, not {task!r}")
        ok, why = cornac_available()
        if not ok:
            raise ImportError(why)
        self.model_name, self.task, self.seed = model, task, int(seed)
        self.name = f"cornac-{model}"
        self.cls_name, self.needs_text = cls_name, needs_text
        self.text_col, self.max_vocab = text_col, int(max_vocab)
        self.params = {**defaults, **params}
        self.model: Any = None
        self.n_fallback_ = 0
        self.capabilities = Capabilities(rating=task == "rating", ranking="ranking" in tasks, uses_text=needs_text)

    def __repr__(self) -> str:
        return f"CornacRecommender({self.model_name!r}, task={self.task!r}, {self.params})"

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None, **inputs: Any) -> CornacRecommender:
        """Fit on ``train`` (``val`` is accepted for the shared interface; Cornac trains a fixed number of iterations).

        Args:
            train: training interactions with user, item, rating (and text for HFT / CTR).
            val: ignored.
            **inputs: side information (ignored).

        Returns:
            self
        """
        import cornac
        from cornac.data import Dataset

        missing = [c for c in (USER_COL, ITEM_COL) if c not in train.columns]
        if missing:
            raise ValueError(f"train lacks column(s) {missing}; it has {list(train.columns)}")
        if len(train) == 0:
            raise ValueError("cannot fit on an empty training table")
        ratings = (
            pd.to_numeric(train[RATING_COL], errors="coerce")
            if RATING_COL in train
            else pd.Series(np.nan, index=train.index)
        )
        if self.task == "rating" and ratings.notna().sum() == 0:
            raise ValueError(f"{self.name}: task='rating' needs rated training rows; every rating is NaN")
        # implicit models read every interaction as 1; explicit ones need a rating (unrated rows use the mean)
        mean = float(ratings.mean()) if ratings.notna().any() else 1.0
        values = (
            np.ones(len(train)) if self.cls_name in ("BPR", "CTR") else ratings.fillna(mean).to_numpy(dtype=np.float64)
        )
        users = train[USER_COL].astype(str).to_numpy()
        items = train[ITEM_COL].astype(str).to_numpy()
        triples = list(zip(users.tolist(), items.tolist(), values.tolist()))
        data = Dataset.from_uir(triples, seed=self.seed)
        if self.needs_text:
            data.add_modalities(item_text=self._item_text(train, data))
        params = dict(self.params, seed=self.seed, verbose=False)
        if self.cls_name in ("BPR", "MF"):
            params["num_threads"] = 1  # Cornac forces one thread under a seed anyway; say so explicitly
        self.model = getattr(cornac.models, self.cls_name)(**params)
        self.model.fit(data)
        self.global_mean_ = mean
        ranged = ratings.dropna()
        self.rating_range_ = (float(ranged.min()), float(ranged.max())) if len(ranged) else (0.0, 1.0)
        counts = pd.Series(items).value_counts()
        # callers pass raw ids; Cornac holds them as strings
        self.user_index = IdIndex(pd.unique(train[USER_COL]))
        self.item_index = IdIndex(pd.unique(train[ITEM_COL]))
        self._uid = {raw: data.uid_map[str(raw)] for raw in self.user_index.ids}
        self._iid = np.array([data.iid_map[str(raw)] for raw in self.item_index.ids], dtype=np.int64)
        self._popularity = counts.reindex([str(i) for i in self.item_index.ids]).fillna(0).to_numpy(dtype=np.float32)
        return self

    def _item_text(self, train: pd.DataFrame, data: Any) -> Any:
        from cornac.data import TextModality
        from cornac.data.text import BaseTokenizer

        if self.text_col not in train.columns:
            raise ValueError(f"{self.name} reads review text, but train has no {self.text_col!r} column")
        text = train[self.text_col].fillna("").astype(str)
        if "summary" in train.columns:
            blank = text.str.strip() == ""
            text = text.where(~blank, train["summary"].fillna("").astype(str))
        docs = text.groupby(train[ITEM_COL].astype(str).to_numpy()).agg(" ".join)
        ids = list(data.iid_map)  # every training item has a document (possibly empty)
        modality = TextModality(
            corpus=[docs.get(i, "") for i in ids],
            ids=ids,
            tokenizer=BaseTokenizer(stop_words="english"),
            max_vocab=self.max_vocab,
        )
        modality.build(id_map=data.iid_map)
        return modality

    def check_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError(f"{self.name} is not fitted; call fit(train) first")

    def score_items(self, user_ids: Sequence[Any]) -> np.ndarray:
        """Scores of every item of ``self.item_index`` for each user (higher = better).

        Args:
            user_ids: raw user ids; an unknown user gets the items' training popularity.

        Returns:
            float32 array (len(user_ids), n_items).
        """
        self.check_fitted()
        out = np.empty((len(user_ids), len(self.item_index)), dtype=np.float32)
        for row, raw in enumerate(user_ids):
            u = self._uid.get(raw)
            out[row] = self._popularity if u is None else np.asarray(self.model.score(u), dtype=np.float32)[self._iid]
        if not np.isfinite(out).all():
            raise ValueError(f"{self.name} produced non-finite scores (diverged training? lower the learning rate)")
        return out

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predicted ratings of the (user, item) rows of ``df``, clipped to the training range.

        Rows with an unknown user or item get the training mean (counted in ``n_fallback_``).
        """
        self.check_fitted()
        if self.task != "rating":
            raise ValueError(f"{self.name} was fitted for task={self.task!r}; predict() needs task='rating'")
        users = df[USER_COL].to_numpy()
        items = self.item_index.index_of(df[ITEM_COL].to_numpy())
        pred = np.full(len(df), self.global_mean_, dtype=np.float64)
        known_user = np.array([u in self._uid for u in users], dtype=bool)
        ok = known_user & (items >= 0)
        self.n_fallback_ = int((~ok).sum())
        rows = np.flatnonzero(ok)
        if rows.size:
            codes, uniques = pd.factorize(pd.Series(users[rows], dtype=object))
            for j, raw in enumerate(uniques):
                sel = rows[codes == j]
                scores = np.asarray(self.model.score(self._uid[raw]), dtype=np.float64)
                pred[sel] = scores[self._iid[items[sel]]]
        lo, hi = self.rating_range_
        return np.clip(pred, lo, hi)
