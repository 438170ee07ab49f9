"""A seeded synthetic review world with known latent structure ("synthetic"; needs no files).

The generator (numpy ``Generator``, fully determined by ``seed``):

- ``n_topics`` topics, each with its own vocabulary of plain English words (guitars, drums, ...);
- ``n_items`` items, each with one main topic (topics get equal shares), a hidden quality and a
  description (``item_text``) made from its topic's words;
- ``n_users`` users, each with 2-3 interests (topics) and a hidden rating bias. A user's active
  interest follows a Markov chain: at each review it stays with probability ``stay_prob``, else
  switches to another of the user's interests. Each user writes ``min_reviews``-``max_reviews``
  reviews at increasing times (random gaps of hours to weeks);
- each review picks an item the user has not reviewed, from the active topic with probability
  ``on_topic_prob`` (else any item);
- rating = round(clip(3.8 + user bias + item quality - 1 if the item is off the user's interests
  + noise, 1, 5));
- text = a few sentences mixing the item topic's words with sentiment words that match the rating
  (positive for 4-5, negative for 1-2, mixed for 3); summary = a short title.

``ground_truth`` holds ``topics`` (names), ``item_topic`` (item id -> topic index), ``user_topics``
(user id -> list of topic indices), ``review_topic`` (np.ndarray aligned with the interaction
rows: the active topic at each review), ``user_bias`` and ``item_quality`` (id -> float).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from textinterest.constants import (
    ITEM_COL,
    ITEM_TEXT_COL,
    ORDER_COL,
    RATING_COL,
    SEED,
    SUMMARY_COL,
    TEXT_COL,
    TIME_COL,
    USER_COL,
)
from textinterest.datasets.base import CleaningReport, ReviewDataset
from textinterest.datasets.cleaning import finalize
from textinterest.datasets.parsing import make_frame
from textinterest.datasets.synthetic_words import (
    BRANDS,
    DAY,
    INTRO,
    ITEM_ADJ,
    MIX_ADJ,
    MIX_END,
    NEG_ADJ,
    NEG_END,
    NEG_FEEL,
    POS_ADJ,
    POS_END,
    POS_FEEL,
    START,
    SUMMARY,
    TOPICS,
    VECTORISED_FROM,
)


def parse_size(variant: str) -> dict[str, int]:
    """Options of a sized synthetic name: "50000x2000" (USERSxITEMS) -> ``{"n_users": 50000, "n_items": 2000}``.

    Args:
        variant: the part of "synthetic:USERSxITEMS" after the colon (``_`` allowed as a digit separator).

    Raises:
        ValueError: the variant is not two positive integers joined by "x".
    """
    users, sep, items = variant.replace("_", "").lower().partition("x")
    if not (sep and users.isdigit() and items.isdigit() and int(users) > 0 and int(items) > 0):
        raise ValueError(f"synthetic size {variant!r} is not USERSxITEMS (e.g. synthetic:50000x2000)")
    return {"n_users": int(users), "n_items": int(items)}


def _pick(options, u: float):
    """A deterministic choice from ``options`` by a uniform number in [0, 1)."""
    return options[min(int(u * len(options)), len(options) - 1)]


def _review_text(words: tuple[str, ...], rating: float, u: np.ndarray) -> tuple[str, str]:
    """Text and summary of one review: topic words plus sentiment words matching ``rating``."""
    n = len(words)
    i, k = int(u[0] * n) % n, int(u[2] * n) % n
    a, b = words[i], words[(i + 1 + int(u[1] * (n - 1))) % n]  # two different words
    c, d = words[k], words[(k + 1 + int(u[3] * (n - 1))) % n]
    sentences = [_pick(INTRO, u[4]).format(a=a, b=b)]
    if rating >= 4:
        mood = "pos"
        sentences.append(f"The {c} is {_pick(POS_ADJ, u[5])} and the {d} feels {_pick(POS_FEEL, u[6])}.")
        if rating >= 5:
            sentences.append(f"It is {_pick(POS_ADJ, u[7])} for anyone into {_pick(words, u[8])}.")
        sentences.append(_pick(POS_END, u[9]))
    elif rating <= 2:
        mood = "neg"
        sentences.append(f"The {c} is {_pick(NEG_ADJ, u[5])} and the {d} {_pick(NEG_FEEL, u[6])}.")
        if rating <= 1:
            sentences.append(f"It is {_pick(NEG_ADJ, u[7])} for anyone into {_pick(words, u[8])}.")
        sentences.append(_pick(NEG_END, u[9]))
    else:
        mood = "mix"
        sentences.append(f"The {c} is {_pick(MIX_ADJ, u[5])}, but the {d} {_pick(NEG_FEEL, u[6])}.")
        sentences.append(_pick(MIX_END, u[9]))
    summary = _pick(SUMMARY[mood], u[10]).format(a=a)
    return " ".join(sentences), summary[0].upper() + summary[1:]


def _make_items(
    rng: np.random.Generator, n_items: int, n_topics: int, topic_names: list[str], vocab: list[tuple[str, ...]]
) -> tuple[np.ndarray, np.ndarray, list[str], pd.DataFrame, list[np.ndarray]]:
    """Item topics, hidden qualities, ids, the item table and the items of each topic."""
    item_topic = rng.permutation(np.arange(n_items) % n_topics)
    quality = rng.normal(0.0, 0.6, n_items)
    item_u = rng.random((n_items, 8))
    item_ids = [f"i{j:04d}" for j in range(n_items)]
    titles, texts = [], []
    for j in range(n_items):
        words, u = vocab[item_topic[j]], item_u[j]
        w = [_pick(words, x) for x in u[:5]]
        title = f"{_pick(BRANDS, u[5])} {w[0].title()} {10 + int(u[6] * 90)}"
        titles.append(title)
        texts.append(
            f"{title}: a {_pick(ITEM_ADJ, u[7])} {w[0]} for {w[1]} and {w[2]}. Works well with {w[3]} and {w[4]}."
        )
    items = pd.DataFrame(
        {ITEM_COL: item_ids, ITEM_TEXT_COL: texts, "title": titles, "topic": [topic_names[t] for t in item_topic]}
    ).astype({ITEM_COL: "str", ITEM_TEXT_COL: "str", "title": "str", "topic": "str"})
    by_topic = [np.flatnonzero(item_topic == t) for t in range(n_topics)]

    return item_topic, quality, item_ids, items, by_topic


def make_synthetic(
    n_users: int = 400,
    n_items: int = 300,
    n_topics: int = 6,
    seed: int = SEED,
    *,
    min_reviews: int = 8,
    max_reviews: int = 30,
    stay_prob: float = 0.8,
    on_topic_prob: float = 0.9,
    kcore: int | None = None,
    vectorised: bool | None = None,
) -> ReviewDataset:
    """Generate the synthetic review world (see the module docstring).

    Args:
        n_users: number of users (>= 1).
        n_items: number of items (>= n_topics).
        n_topics: number of topics, 1 to ``len(TOPICS)`` (10).
        seed: seed of the numpy Generator; the same arguments give the same data.
        min_reviews, max_reviews: each user writes between these many reviews (inclusive; capped by n_items).
        stay_prob: probability that the active interest stays the same from one review to the next.
        on_topic_prob: probability that a review's item comes from the active topic.
        kcore: keep only the k-core (``review_topic`` stays aligned with the kept rows).
        vectorised: draw the reviews with whole-array numpy operations
            (:mod:`textinterest.datasets.synthetic_fast`: about a million reviews in a minute) instead
            of one review at a time. Both follow the same model but consume the random stream
            differently, so they give different worlds for one seed. None (default) picks the
            vectorised generator above ``VECTORISED_FROM`` expected reviews, so the small teaching
            worlds stay exactly as they were.

    Returns:
        A ``ReviewDataset`` named "synthetic" with item metadata and ``ground_truth``.
    """
    _check_arguments(n_users, n_items, n_topics, min_reviews, max_reviews, stay_prob, on_topic_prob)
    rng = np.random.default_rng(seed)
    topic_names = list(TOPICS)[:n_topics]
    vocab = [TOPICS[t] for t in topic_names]

    item_topic, quality, item_ids, items, by_topic = _make_items(rng, n_items, n_topics, topic_names, vocab)
    if vectorised is None:
        vectorised = n_users * (min_reviews + max_reviews) / 2 > VECTORISED_FROM
    if vectorised:
        from textinterest.datasets.synthetic_fast import generate_reviews

        cols, user_topics, user_bias = generate_reviews(
            rng,
            n_users,
            item_topic,
            quality,
            item_ids,
            vocab,
            min_reviews=min_reviews,
            max_reviews=max_reviews,
            stay_prob=stay_prob,
            on_topic_prob=on_topic_prob,
        )
        text_columns: tuple[str, ...] = ()
    else:
        world = _ReviewWorld(item_topic, quality, item_ids, vocab, by_topic, stay_prob, on_topic_prob)
        cols, user_topics, user_bias = _reviews_one_at_a_time(rng, n_users, world, min_reviews, max_reviews)
        text_columns = (TEXT_COL, SUMMARY_COL)
    return _assemble(
        cols,
        items,
        item_topic,
        quality,
        item_ids,
        topic_names,
        user_topics,
        user_bias,
        n_users,
        n_items,
        n_topics,
        seed,
        kcore,
        text_columns=text_columns,
    )


def _check_arguments(
    n_users: int,
    n_items: int,
    n_topics: int,
    min_reviews: int,
    max_reviews: int,
    stay_prob: float,
    on_topic_prob: float,
) -> None:
    """Raise ``ValueError`` on arguments of :func:`make_synthetic` that describe no world."""
    if not 1 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be between 1 and {len(TOPICS)}, got {n_topics}")
    if n_users < 1 or n_items < n_topics:
        raise ValueError(f"need n_users >= 1 and n_items >= n_topics, got n_users={n_users}, n_items={n_items}")
    if not 1 <= min_reviews <= max_reviews:
        raise ValueError(f"need 1 <= min_reviews <= max_reviews, got {min_reviews}, {max_reviews}")
    if not (0.0 <= stay_prob <= 1.0 and 0.0 <= on_topic_prob <= 1.0):
        raise ValueError("stay_prob and on_topic_prob must be probabilities")


@dataclass(frozen=True)
class _ReviewWorld:
    """What the one-review-at-a-time generator draws reviews from.

    Attributes:
        item_topic, quality, item_ids: the items (topic index, hidden quality, id).
        vocab: each topic's words.
        by_topic: the item positions of each topic.
        stay_prob, on_topic_prob: see :func:`make_synthetic`.
    """

    item_topic: np.ndarray
    quality: np.ndarray
    item_ids: list[str]
    vocab: list[tuple[str, ...]]
    by_topic: list[np.ndarray]
    stay_prob: float
    on_topic_prob: float


def _reviews_one_at_a_time(
    rng: np.random.Generator, n_users: int, world: _ReviewWorld, min_reviews: int, max_reviews: int
) -> tuple[dict[str, list], dict[str, list[int]], dict[str, float]]:
    """Draw the users and their reviews one review at a time (the small worlds' generator).

    Args:
        rng: the world's generator (items already drawn from it).
        n_users: number of users.
        world: the items and the review probabilities.
        min_reviews, max_reviews: see :func:`make_synthetic`.

    Returns:
        ``(columns, user_topics, user_bias)`` as :func:`textinterest.datasets.synthetic_fast.generate_reviews`.
    """
    n_topics = len(world.vocab)
    cols: dict[str, list] = {
        USER_COL: [],
        ITEM_COL: [],
        RATING_COL: [],
        TIME_COL: [],
        TEXT_COL: [],
        SUMMARY_COL: [],
        ORDER_COL: [],
        "_review_topic": [],
    }
    user_topics: dict[str, list[int]] = {}
    user_bias: dict[str, float] = {}
    n_reviews = rng.integers(min_reviews, max_reviews + 1, n_users)
    for uid in range(n_users):
        user = f"u{uid:04d}"
        k = min(int(rng.integers(2, 4)), n_topics)
        interests = [int(t) for t in rng.choice(n_topics, size=k, replace=False)]
        user_topics[user] = interests
        bias = float(rng.normal(0.0, 0.5))
        user_bias[user] = bias
        n = min(int(n_reviews[uid]), len(world.item_ids))
        _user_reviews(rng, world, cols, user, interests, bias, n)
    return cols, user_topics, user_bias


def _user_reviews(
    rng: np.random.Generator,
    world: _ReviewWorld,
    cols: dict[str, list],
    user: str,
    interests: list[int],
    bias: float,
    n: int,
) -> None:
    """Append ``n`` reviews of one user (interests, rating bias) to ``cols``, in time order."""
    k = len(interests)
    u = rng.random((n, 16))
    noise = rng.normal(0.0, 0.7, n)
    gaps = (rng.exponential(10 * DAY, n) + 3600 + u[:, 15] * DAY).astype(np.int64)
    times = START + int(rng.integers(0, 3 * 365 * DAY)) + np.cumsum(gaps)
    seen: set[int] = set()
    active = interests[int(u[0, 0] * k) % k]
    for r in range(n):
        if r > 0 and k > 1 and u[r, 0] >= world.stay_prob:
            others = [t for t in interests if t != active]
            active = others[int(u[r, 1] * len(others)) % len(others)]
        j = _pick_item(u[r], active, interests, seen, world)
        seen.add(j)
        topic = world.item_topic[j]
        off_interest = 0.0 if topic in interests else 1.0
        rating = float(np.clip(np.rint(3.8 + bias + world.quality[j] - off_interest + noise[r]), 1, 5))
        text, summary = _review_text(world.vocab[topic], rating, u[r, 4:])
        cols[USER_COL].append(user)
        cols[ITEM_COL].append(world.item_ids[j])
        cols[RATING_COL].append(rating)
        cols[TIME_COL].append(int(times[r]))
        cols[TEXT_COL].append(text)
        cols[SUMMARY_COL].append(summary)
        cols[ORDER_COL].append(len(cols[ORDER_COL]))
        cols["_review_topic"].append(active)


def _pick_item(u: np.ndarray, active: int, interests: list[int], seen: set[int], world: _ReviewWorld) -> int:
    """The item of one review: an unseen item of the active topic (or of any topic), chosen by ``u``.

    Falls back to the user's other interests, then to any unseen item, when the pool is used up.
    """
    n_items, by_topic = len(world.item_ids), world.by_topic
    pool = by_topic[active] if u[2] < world.on_topic_prob else np.arange(n_items)
    candidates = [j for j in pool if j not in seen]
    if not candidates:
        candidates = [j for t in interests for j in by_topic[t] if j not in seen] or [
            j for j in range(n_items) if j not in seen
        ]
    return int(candidates[int(u[3] * len(candidates)) % len(candidates)])


def _assemble(
    cols: dict,
    items: pd.DataFrame,
    item_topic: np.ndarray,
    quality: np.ndarray,
    item_ids: list[str],
    topic_names: list[str],
    user_topics: dict[str, list[int]],
    user_bias: dict[str, float],
    n_users: int,
    n_items: int,
    n_topics: int,
    seed: int,
    kcore: int | None,
    text_columns: tuple[str, ...],
) -> ReviewDataset:
    """Clean the generated columns and wrap them with the items and the ground truth."""
    report = CleaningReport(
        source=f"synthetic(n_users={n_users}, n_items={n_items}, n_topics={n_topics}, seed={seed})",
        n_read=len(cols[ORDER_COL]),
    )
    df = finalize(make_frame(cols, {"_review_topic": "int64"}), report, kcore=kcore, text_columns=text_columns)
    review_topic = df["_review_topic"].to_numpy(dtype=np.int64)
    df = df.drop(columns="_review_topic")
    if kcore is not None:
        items = items.loc[items[ITEM_COL].isin(df[ITEM_COL])].reset_index(drop=True)
    ground_truth = {
        "topics": topic_names,
        "item_topic": {item_ids[j]: int(item_topic[j]) for j in range(n_items)},
        "user_topics": user_topics,
        "review_topic": review_topic,
        "user_bias": user_bias,
        "item_quality": {item_ids[j]: float(quality[j]) for j in range(n_items)},
    }
    return ReviewDataset(name="synthetic", interactions=df, items=items, report=report, ground_truth=ground_truth)
