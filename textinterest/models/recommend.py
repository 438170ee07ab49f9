"""Ask a fitted recommender: top-k items for a known user or for a new user's reviews, and why an item scores.
(Above 500 lines on purpose: the three questions share the validation of a new user's reviews and the scoring.)

Three questions, for any fitted torch recommender (loaded with ``Class.load(folder)`` or just trained):

- :func:`recommend` -- top-k items for a user of the training data, their own items left out;
- :func:`recommend_for_history` -- top-k items for someone the model never saw, from the reviews they
  pass in (text, optional rating, time, optional item). The interest model embeds the texts with the
  encoder it was trained with, scores their sentiment with its sentiment head and runs its LSTM over
  the history: no retraining. Items unknown to the model can be offered as candidates by their text
  (``new_items``): they are scored from that text alone, like an item without an ID embedding.
- :func:`explain` -- the composition weights of the interest components for one (user, item) and the
  past reviews that carry the most weight in the composed interest (see
  :meth:`InterestRecommender.explain`), for known users and new histories alike.

Input errors raise :class:`RequestError` (a ``ValueError``) naming the review and the field;
an unknown user raises :class:`UnknownUserError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from textinterest.models.interest_network import component_names

__all__ = [
    "MAX_REVIEWS",
    "MAX_TEXT_CHARS",
    "RequestError",
    "UnknownUserError",
    "explain",
    "history_scores",
    "recommend",
    "recommend_for_history",
    "score_text_items",
    "validate_history",
]

MAX_TEXT_CHARS = 20_000  # longer texts are refused: the encoder reads 128-512 tokens anyway
MAX_REVIEWS = 500  # reviews per history; the model keeps the last ``max_history`` of them


class RequestError(ValueError):
    """A request the model cannot answer as given (bad k, empty or malformed history, ...)."""


class UnknownUserError(RequestError):
    """The user is not in the training data and no history was given."""


# --------------------------------------------------------------------------- input checks


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise RequestError(f"k must be a positive int, got {k!r}")
    return int(k)


def _timestamp(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise RequestError(f"{where}: 'timestamp' is required (seconds since the epoch or an ISO 8601 date)")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(float(value)):
            raise RequestError(f"{where}: 'timestamp' must be finite, got {value!r}")
        return int(value)
    if isinstance(value, str):
        import pandas as pd

        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise RequestError(f"{where}: 'timestamp' {value!r} is not a date: {exc}") from exc
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return int(stamp.timestamp())
    raise RequestError(f"{where}: 'timestamp' must be a number or an ISO 8601 string, got {type(value).__name__}")


def validate_history(
    reviews: Any, *, max_reviews: int = MAX_REVIEWS, max_text_chars: int = MAX_TEXT_CHARS, need_text: bool = True
) -> list[dict[str, Any]]:
    """Check a new user's reviews and return them in time order (ties keep the given order).

    Args:
        reviews: a list of mappings with ``text`` (str), ``timestamp`` (seconds or ISO date), and
            optionally ``rating`` (number) and ``item_id``.
        max_reviews: most reviews accepted.
        max_text_chars: longest text accepted, in characters.
        need_text: the text must be non-blank (text models).

    Returns:
        ``[{"text", "timestamp" (int), "rating" (float or None), "item_id" (or None), "position"}]``.

    Raises:
        RequestError: naming the review (0-based) and the field.
    """
    if isinstance(reviews, (str, bytes)) or not isinstance(reviews, Sequence):
        raise RequestError(f"history must be a list of reviews, got {type(reviews).__name__}")
    if len(reviews) == 0:
        raise RequestError("history is empty: give at least one review (text, timestamp, optional rating and item_id)")
    if len(reviews) > max_reviews:
        raise RequestError(f"history has {len(reviews)} reviews; at most {max_reviews} are accepted")
    out = []
    for j, review in enumerate(reviews):
        where = f"review {j}"
        if not isinstance(review, Mapping):
            raise RequestError(f"{where}: must be an object with 'text' and 'timestamp', got {type(review).__name__}")
        text = review.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise RequestError(f"{where}: 'text' must be a string, got {type(text).__name__}")
        if len(text) > max_text_chars:
            raise RequestError(f"{where}: 'text' has {len(text):,} characters; the limit is {max_text_chars:,}")
        if need_text and not text.strip():
            raise RequestError(f"{where}: 'text' is empty; this model reads the review text")
        rating = review.get("rating")
        if rating is not None:
            if (
                isinstance(rating, bool)
                or not isinstance(rating, (int, float, np.integer, np.floating))
                or not math.isfinite(float(rating))
            ):
                raise RequestError(f"{where}: 'rating' must be a finite number or null, got {rating!r}")
            rating = float(rating)
        item = review.get("item_id")
        if item is not None and (isinstance(item, bool) or not isinstance(item, (str, int, np.integer))):
            raise RequestError(f"{where}: 'item_id' must be a string or int, got {type(item).__name__}")
        out.append(
            {
                "text": text,
                "timestamp": _timestamp(review.get("timestamp"), where),
                "rating": rating,
                "item_id": item,
                "position": j,
            }
        )
    return sorted(out, key=lambda r: (r["timestamp"], r["position"]))


def _user_position(model: Any, user: Any) -> int:
    position = int(model.user_index.index_of([user])[0])
    if position < 0:
        raise UnknownUserError(
            f"user {user!r} is not in the training data of this model; pass their reviews as a history instead"
        )
    return position


def _item_position(model: Any, item: Any) -> int:
    return int(model.item_index.index_of([item])[0])


def _top_k(
    model: Any,
    scores: np.ndarray,
    k: int,
    exclude: np.ndarray,
    extra_ids: Sequence[Any] = (),
    extra_scores: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    ids = model.item_index.ids
    scores = np.asarray(scores, np.float64).copy()
    scores[exclude] = -np.inf
    if extra_scores is not None and len(extra_scores):
        scores = np.concatenate([scores, np.asarray(extra_scores, np.float64)])
        ids = np.concatenate([ids, np.asarray(list(extra_ids), dtype=object)])
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(-scores[finite], kind="stable")][:k]
    n_known = len(model.item_index)
    return [
        {"item_id": ids[j], "score": float(scores[j]), "rank": r + 1, "known_item": bool(j < n_known)}
        for r, j in enumerate(order)
    ]


def _item_positions(model: Any, reviews: list[dict[str, Any]]) -> np.ndarray:
    """Catalogue positions of the reviews' items (-1: no item given, or one the model does not know)."""
    out = np.full(len(reviews), -1, np.int64)
    named = [j for j, r in enumerate(reviews) if r["item_id"] is not None]
    if named:
        out[named] = model.item_index.index_of([reviews[j]["item_id"] for j in named])
    return out


def _seen(model: Any, user: int) -> np.ndarray:
    seq = model.seq
    start, n = int(seq.starts[user]), int(seq.lengths[user])
    return np.unique(seq.item[start : start + n])


# --------------------------------------------------------------------------- known users


def recommend(
    model: Any, user_id: Any, k: int = 10, exclude_seen: bool = True, new_items: Mapping[Any, Any] | None = None
) -> list[dict[str, Any]]:
    """Top-k items for a user of the training data.

    Args:
        model: a fitted torch recommender.
        user_id: raw user id.
        k: number of items (> 0).
        exclude_seen: leave out the items the user reviewed in training.
        new_items: interest model only: ``{item_id: text or [review texts]}`` of items the model has
            never seen, scored from their text and ranked with the catalogue.

    Returns:
        ``[{"item_id", "score", "rank", "known_item"}]``, best first.

    Raises:
        UnknownUserError: the user is not in the training data.
        RequestError: k <= 0.
    """
    k = _check_k(k)
    model.check_fitted()
    user = _user_position(model, user_id)
    exclude = _seen(model, user) if exclude_seen else np.zeros(0, np.int64)
    if new_items:
        comps, users = _known_components(model, user)
        scores = _catalogue_scores(model, comps, users)
        ids, extra = _new_item_scores(model, comps, users, new_items)
        return _top_k(model, scores, k, exclude, ids, extra)
    return _top_k(model, model.score_items([user_id])[0], k, exclude)


def _is_interest(model: Any) -> bool:
    return any(c.__name__ == "InterestRecommender" for c in type(model).__mro__)


def _require_interest(model: Any, what: str) -> None:
    if not _is_interest(model):
        raise RequestError(f"{what} needs the interest model (text); this is a {type(model).__name__}")


def _known_components(model: Any, user: int) -> tuple[torch.Tensor, torch.Tensor]:
    model.module.eval()
    with torch.no_grad():
        comps, _ = model.final_state(np.array([user]))
    return comps, model.as_tensor([user + 1])


def _catalogue_scores(model: Any, comps: torch.Tensor, users: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out, _ = model.module.score_candidates(comps, users)
    return out[0].float().cpu().numpy()


def _new_item_scores(
    model: Any, comps: torch.Tensor, users: torch.Tensor, new_items: Mapping[Any, Any]
) -> tuple[list[Any], np.ndarray]:
    """Scores of items the model has never seen, from their text: a description, or a list of reviews
    whose vectors are averaged (the way the model builds a catalogue item's text vector)."""
    _require_interest(model, "scoring new items from their text")
    if not model.config.use_text:
        raise RequestError("this interest model does not read text (use_text=False): new items cannot be scored")
    ids = list(new_items)
    vectors = []
    for item in ids:
        texts = new_items[item]
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, Sequence) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise RequestError(f"new item {item!r}: give a non-empty text or a non-empty list of texts")
        if any(len(t) > MAX_TEXT_CHARS for t in texts):
            raise RequestError(f"new item {item!r}: a text is over the limit of {MAX_TEXT_CHARS:,} characters")
        vectors.append(_embed(model, list(texts)).mean(0))
    return ids, score_text_items(model, comps, users, np.stack(vectors))


def score_text_items(model: Any, comps: torch.Tensor, users: torch.Tensor, vectors: np.ndarray) -> np.ndarray:
    """Scores of items known only by a text vector (no ID embedding, no CF item terms) for one user.

    Args:
        model: a fitted interest model.
        comps: (1, C, H) the user's components.
        users: (1,) 1-based user position (0 = a new user).
        vectors: (N, D) the items' text vectors.

    Returns:
        (N,) scores on the catalogue's scale.
    """
    n = len(vectors)
    with torch.no_grad():
        out, _ = model.module.score_pairs(
            comps.expand(n, -1, -1),
            users.expand(n),
            torch.zeros(n, dtype=torch.long, device=model.device),
            torch.as_tensor(np.asarray(vectors, np.float32), device=model.device),
        )
    return out.float().cpu().numpy()


def _embed(model: Any, texts: list[str]) -> np.ndarray:
    encoder = getattr(model, "text_encoder_", None)
    if encoder is None:
        raise RequestError(
            "this model has no text encoder attached: load it from a saved folder "
            "(Class.load) or set model.text_encoder_ to the encoder it was trained with"
        )
    return np.asarray(encoder.embed(texts), dtype=np.float32)


# --------------------------------------------------------------------------- new users


def _history_batch(model: Any, reviews: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The model's input batch (B = 1) for a validated history (last ``max_history`` reviews kept)."""
    cfg = model.config
    kept = reviews[-cfg.max_history :]
    n = len(kept)
    if cfg.use_text:
        review = _embed(model, [r["text"] for r in kept])  # (n, D)
        if review.shape[1] != cfg.text_dim:
            raise RequestError(f"the encoder gives {review.shape[1]}-d vectors; the model reads {cfg.text_dim}-d")
    else:
        review = np.zeros((n, 1), np.float32)
    sentiment = np.zeros(n, np.float32)
    if cfg.use_text and cfg.use_sentiment:
        manifest = getattr(model, "artifact_", None) or {}
        clf = getattr(model, "sentiment_model_", None)
        if clf is not None:
            sentiment = np.clip(np.asarray(clf.score([r["text"] for r in kept]), np.float32), -1.0, 1.0)
        elif manifest.get("sentiment_input") in ("classifier", "given"):
            raise RequestError(
                "the model was trained with sentiment scores but has no sentiment head to score new reviews"
            )
    items = _item_positions(model, kept)
    rating = np.array([np.nan if r["rating"] is None else r["rating"] for r in kept], np.float64)
    rated = np.isfinite(rating)
    rating_feat = np.where(rated, (rating - cfg.rating_center) / cfg.rating_scale, 0.0)
    ts = np.array([r["timestamp"] for r in kept], np.int64)
    gap = np.diff(ts, prepend=ts[:1]).astype(np.float64) / 86400.0
    log_gap = np.log1p(np.clip(gap, 0.0, None))

    def f(a):
        return torch.as_tensor(np.asarray(a, np.float32)[None, :], device=model.device)

    batch = {
        "review": torch.as_tensor(review[None], device=model.device),  # (1, n, D)
        "items": torch.as_tensor(np.where(items >= 0, items + 1, 0)[None], device=model.device),  # (1, n)
        "sentiment": f(sentiment),
        "rating": f(rating_feat),
        "rated": f(rated),
        "log_gap": f(log_gap),
        "mask": torch.ones(1, n, dtype=torch.bool, device=model.device),
    }
    meta = [
        {
            "item_id": r["item_id"],
            "timestamp": r["timestamp"],
            "rating": r["rating"],
            "text": r["text"],
            "position": r["position"],
            "sentiment": float(s),
        }
        for r, s in zip(kept, sentiment)
    ]
    return batch, meta


def history_scores(model: Any, reviews: Any, new_items: Mapping[Any, Any] | None = None) -> tuple[np.ndarray, dict]:
    """Scores of every catalogue item (and of ``new_items``) for a new user's reviews.

    Returns:
        scores (n_items,) in ``model.item_index`` order, and ``{"exclude": known items of the history,
        "new_item_ids", "new_item_scores", "n_used"}``.
    """
    model.check_fitted()
    text_model = _is_interest(model) and model.config.use_text
    reviews = validate_history(reviews, need_text=text_model)
    info: dict[str, Any] = {"new_item_ids": [], "new_item_scores": np.zeros(0)}
    items = _item_positions(model, reviews)
    info["exclude"] = np.unique(items[items >= 0])
    model.module.eval()
    with torch.no_grad():
        if _is_interest(model):
            batch, meta = _history_batch(model, reviews)
            comps, _, _ = model.module.final_components(batch)
            users = torch.zeros(1, dtype=torch.long, device=model.device)
            scores = _catalogue_scores(model, comps, users)
            if new_items:
                info["new_item_ids"], info["new_item_scores"] = _new_item_scores(model, comps, users, new_items)
            info["n_used"] = len(meta)
            return scores, info
        if new_items:
            _require_interest(model, "scoring new items from their text")
        known = items[items >= 0]
        info["n_used"] = len(known)
        if type(model).__name__ == "SequentialRecommender":
            known = known[-model.max_history :]
            seq_items = torch.as_tensor((known + 1)[None], device=model.device)
            states = model.module.states(seq_items)  # (1, n + 1, H)
            return model.module.logits(states[:, -1])[0].float().cpu().numpy(), info
        # ID-only MF knows nothing of a new user: item biases only (a popularity-like order)
        info["n_used"] = 0
        return model.module.score_all(torch.zeros(1, dtype=torch.long, device=model.device))[
            0
        ].float().cpu().numpy(), info


def recommend_for_history(
    model: Any, reviews: Any, k: int = 10, exclude_seen: bool = True, new_items: Mapping[Any, Any] | None = None
) -> list[dict[str, Any]]:
    """Top-k items for a user the model never saw, from their reviews; nothing is retrained.

    Args:
        model: a fitted recommender (the interest model reads the texts; the ID-only sequential LSTM
            reads the known items; ID-only MF can only rank by item bias).
        reviews: ``[{"text", "timestamp", "rating" (optional), "item_id" (optional)}]``.
        k: number of items (> 0).
        exclude_seen: leave out the catalogue items named in the history.
        new_items: interest model only: ``{item_id: text or [review texts]}`` of unseen items to rank
            with the catalogue.

    Returns:
        ``[{"item_id", "score", "rank", "known_item"}]``, best first.

    Raises:
        RequestError: empty or malformed history, texts over the size limit, k <= 0.
    """
    k = _check_k(k)
    scores, info = history_scores(model, reviews, new_items)
    exclude = info["exclude"] if exclude_seen else np.zeros(0, np.int64)
    return _top_k(model, scores, k, exclude, info["new_item_ids"], info["new_item_scores"])


# --------------------------------------------------------------------------- explanations


def _step_weights(cfg: Any, gamma: np.ndarray, beta: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, dict]:
    """Each past step's share in v* = sum_k beta_k c_k (the same formula as InterestRecommender.explain)."""
    names = component_names(cfg)
    n = gamma.shape[0]
    p, K = cfg.prior_count, cfg.n_components
    weights = (gamma * (beta[:K] / (den + p))[None, :]).sum(1)  # (n,)
    prior = {names[k]: float(p / (den[k] + p)) for k in range(K)}
    if cfg.use_long_short:
        weights = weights + beta[K] / (n + p)
        if n:
            weights[-1] += beta[K + 1]
        prior.update(long_term=float(p / (n + p)), short_term=1.0 if n == 0 else 0.0)
    return weights, prior


def explain(
    model: Any,
    user_id: Any = None,
    item_id: Any = None,
    *,
    history: Any = None,
    item_text: str | None = None,
    top_n: int = 3,
) -> dict[str, Any]:
    """Why an item scores what it does for a user (known, or given by their reviews).

    Args:
        model: a fitted interest model.
        user_id: a training user; or None with ``history``.
        item_id: the item (a catalogue id, or any id together with ``item_text`` for an unseen item).
        history: a new user's reviews (see :func:`recommend_for_history`), instead of ``user_id``.
        item_text: text of an item the model has never seen (scored from it).
        top_n: past reviews to return (>= 0).

    Returns:
        ``{"user_id", "item_id", "score", "cf_term", "text_term", "history_length", "known_user",
        "known_item", "composition": {component: beta}, "prior_share", "top_reviews": [{"item_id",
        "timestamp", "rating", "text", "weight", "component", "position"}]}``; weights are each past
        review's share in the composed interest v*, best first.

    Raises:
        RequestError / UnknownUserError: not an interest model, unknown user without history, bad history.
    """
    _require_interest(model, "explain()")
    model.check_fitted()
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0:
        raise RequestError(f"top_n must be an int >= 0, got {top_n!r}")
    if item_id is None:
        raise RequestError("item_id is required")
    cfg = model.config
    item = _item_position(model, item_id)
    if item < 0 and item_text is None:
        raise RequestError(
            f"item {item_id!r} is not in the catalogue of this model; pass its text (item_text) to score it"
        )
    model.module.eval()
    with torch.no_grad():
        if history is not None:
            reviews = validate_history(history, need_text=cfg.use_text)
            batch, meta = _history_batch(model, reviews)
            user = -1
        else:
            if user_id is None:
                raise UnknownUserError("give a user_id of the training data or the user's reviews (history)")
            user = _user_position(model, user_id)
            batch, meta = _known_history(model, user)
        comps, gamma, den = model.module.final_components(batch)
        ut = model.as_tensor([user + 1])
        it = model.as_tensor([item + 1 if item >= 0 and item_text is None else 0])
        text = None if item_text is None else torch.as_tensor(_embed(model, [item_text]), device=model.device)
        total, beta = model.module.score_pairs(comps, ut, it, text)
        cf = model.module.cf_term(ut, it)
    beta = beta[0].float().cpu().numpy()
    n = int(batch["mask"][0].sum())
    gamma = gamma[0].float().cpu().numpy()[:n]
    weights, prior = _step_weights(cfg, gamma, beta, den[0].float().cpu().numpy())
    names = component_names(cfg)
    top = []
    for j in np.argsort(-weights, kind="stable")[:top_n]:
        top.append(
            {
                **{k: meta[j][k] for k in ("item_id", "timestamp", "rating", "text", "position")},
                "weight": float(weights[j]),
                "component": names[int(np.argmax(gamma[j]))],
            }
        )
    score = float(total[0])
    if model.task == "rating":
        score = float(np.clip(score, *model.rating_range_))
    return {
        "user_id": user_id if history is None else None,
        "item_id": item_id,
        "score": score,
        "cf_term": float(cf[0]),
        "text_term": float(total[0] - cf[0]),
        "history_length": n,
        "known_user": user >= 0,
        "known_item": item >= 0 and item_text is None,
        "composition": {name: float(b) for name, b in zip(names, beta)},
        "prior_share": prior,
        "top_reviews": top,
        "weights": [float(w) for w in weights],
    }


def _known_history(model: Any, user: int) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The batch of a training user's last ``max_history`` steps and what each step was."""
    from textinterest.constants import TIME_COL

    win = model.seq.last_window(np.array([user]), model.config.max_history)
    batch, pos, mask, _ = model.history_batch(win)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    seq, texts = model.seq, getattr(model, "_texts", None)
    times = model.training_frame[TIME_COL].to_numpy()
    meta = []
    for j, r in enumerate(pos[0][mask[0]]):
        r = int(r)
        meta.append(
            {
                "item_id": model.item_index.ids[seq.item[r]],
                "timestamp": int(times[seq.rows[r]]),
                "rating": None if not np.isfinite(seq.rating[r]) else float(seq.rating[r]),
                "text": None if texts is None else texts[r],
                "position": j,
            }
        )
    return batch, meta
