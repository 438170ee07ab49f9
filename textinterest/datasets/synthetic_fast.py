"""The synthetic world's reviews drawn with whole-array numpy operations (a million reviews in about a minute).

Same model as the review-at-a-time generator in :mod:`textinterest.datasets.synthetic` (interests
that switch along a Markov chain, items from the active topic, ratings from bias + quality + noise,
text from topic and sentiment words), but every draw is made for all reviews at once:

- the active interest is a position in the user's interest list; a switch moves it by 1..k-1
  places, so positions are a per-user cumulative sum modulo k;
- an item is drawn from the active topic (or from all items); a (user, item) pair drawn twice is
  redrawn for the later review, a few rounds at a time, and the rare rows still repeated after that
  take an item the user has not reviewed yet, one by one;
- texts are concatenated from object arrays of words and sentence parts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from textinterest.constants import ITEM_COL, ORDER_COL, RATING_COL, SUMMARY_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets import synthetic_words as words_mod
from textinterest.datasets.synthetic_words import DAY, START

_REDRAW_ROUNDS = 20


def _choose(options: tuple[str, ...], u: np.ndarray) -> np.ndarray:
    """Vectorised ``_pick``: ``options[floor(u * len)]`` as an object array."""
    table = np.asarray(options, dtype=object)
    return table[np.minimum((u * len(options)).astype(np.int64), len(options) - 1)]


def _split_template(template: str) -> tuple[str, str, str]:
    """ "I bought this {a} for my {b}." -> ("I bought this ", " for my ", ".")."""
    head, rest = template.split("{a}")
    mid, tail = rest.split("{b}")
    return head, mid, tail


def _texts(words: np.ndarray, topic: np.ndarray, rating: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Review texts and summaries for all rows (see ``synthetic._review_text``, the per-review version)."""
    n = words.shape[1]
    i = (u[:, 0] * n).astype(np.int64) % n
    k = (u[:, 2] * n).astype(np.int64) % n
    a = words[topic, i]
    b = words[topic, (i + 1 + (u[:, 1] * (n - 1)).astype(np.int64)) % n]
    c = words[topic, k]
    d = words[topic, (k + 1 + (u[:, 3] * (n - 1)).astype(np.int64)) % n]
    parts = [_split_template(t) for t in words_mod.INTRO]
    t_idx = np.minimum((u[:, 4] * len(parts)).astype(np.int64), len(parts) - 1)
    head, mid, tail = (np.asarray([p[j] for p in parts], dtype=object)[t_idx] for j in range(3))
    text = head + a + mid + b + tail
    summary = np.empty(len(rating), dtype=object)
    pos, neg = rating >= 4, rating <= 2
    mix = ~(pos | neg)
    for mask, adj, feel, end, joiner, verb in (
        (pos, words_mod.POS_ADJ, words_mod.POS_FEEL, words_mod.POS_END, " and the ", " feels "),
        (neg, words_mod.NEG_ADJ, words_mod.NEG_FEEL, words_mod.NEG_END, " and the ", " "),
        (mix, words_mod.MIX_ADJ, words_mod.NEG_FEEL, words_mod.MIX_END, ", but the ", " "),
    ):
        rows = np.flatnonzero(mask)
        if not rows.size:
            continue
        ur = u[rows]
        second = " The " + c[rows] + " is " + _choose(adj, ur[:, 5]) + joiner + d[rows] + verb + _choose(feel, ur[:, 6])
        body = text[rows] + second + "."
        if adj is not words_mod.MIX_ADJ:
            strong = (rating[rows] >= 5) if adj is words_mod.POS_ADJ else (rating[rows] <= 1)
            extra = (
                " It is "
                + _choose(adj, ur[:, 7])
                + " for anyone into "
                + words[topic[rows], np.minimum((ur[:, 8] * n).astype(np.int64), n - 1)]
                + "."
            )
            body = np.where(strong, body + extra, body)
        text[rows] = body + " " + _choose(end, ur[:, 9])
    for mood, mask in (("pos", pos), ("neg", neg), ("mix", mix)):
        rows = np.flatnonzero(mask)
        templates = words_mod.SUMMARY[mood]
        pick = np.minimum((u[rows, 10] * len(templates)).astype(np.int64), len(templates) - 1)
        for j, template in enumerate(templates):
            chosen = rows[pick == j]
            if "{a}" in template:
                head_s, tail_s = template.split("{a}")
                summary[chosen] = head_s + a[chosen] + tail_s
            else:
                summary[chosen] = template
    return text, summary


def _draw_items(
    u: np.ndarray,
    active: np.ndarray,
    topic_items: np.ndarray,
    topic_start: np.ndarray,
    topic_size: np.ndarray,
    n_items: int,
    on_topic_prob: float,
) -> np.ndarray:
    """Item of each row: from its active topic with probability ``on_topic_prob``, else from all items."""
    on_topic = u[:, 0] < on_topic_prob
    size = np.where(on_topic, topic_size[active], n_items)
    pos = np.minimum((u[:, 1] * size).astype(np.int64), size - 1)
    out = pos.copy()
    out[on_topic] = topic_items[topic_start[active[on_topic]] + pos[on_topic]]
    return out


def _fix_repeats(
    user: np.ndarray,
    item: np.ndarray,
    redraw: Any,
    interests: np.ndarray,
    k: np.ndarray,
    item_topic: np.ndarray,
    n_items: int,
) -> None:
    """Make every (user, item) pair unique in place: redraw repeats, then assign the leftovers one by one."""
    for _ in range(_REDRAW_ROUNDS):
        key = user.astype(np.int64) * n_items + item
        _, first = np.unique(key, return_index=True)
        repeat = np.ones(len(key), dtype=bool)
        repeat[first] = False
        rows = np.flatnonzero(repeat)
        if not rows.size:
            return
        item[rows] = redraw(rows)
    key = user.astype(np.int64) * n_items + item
    _, first = np.unique(key, return_index=True)
    repeat = np.ones(len(key), dtype=bool)
    repeat[first] = False
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    ends = np.r_[starts[1:], len(user)]
    for r in np.flatnonzero(repeat):
        lo = starts[np.searchsorted(starts, r, side="right") - 1]
        hi = ends[np.searchsorted(starts, r, side="right") - 1]
        seen = set(item[lo:hi].tolist())
        mine = set(interests[user[r], : k[user[r]]].tolist())
        candidates = [j for j in range(n_items) if item_topic[j] in mine and j not in seen] or [
            j for j in range(n_items) if j not in seen
        ]
        item[r] = candidates[0]


def generate_reviews(
    rng: np.random.Generator,
    n_users: int,
    item_topic: np.ndarray,
    quality: np.ndarray,
    item_ids: list[str],
    vocab: list[tuple[str, ...]],
    *,
    min_reviews: int,
    max_reviews: int,
    stay_prob: float,
    on_topic_prob: float,
) -> tuple[dict[str, np.ndarray], dict[str, list[int]], dict[str, float]]:
    """Draw every user's reviews at once.

    Args:
        rng: the world's generator (items already drawn from it).
        n_users: number of users.
        item_topic, quality, item_ids: the items (topic index, hidden quality, id).
        vocab: each topic's words (all topics have the same number of words).
        min_reviews, max_reviews, stay_prob, on_topic_prob: see ``make_synthetic``.

    Returns:
        ``(columns, user_topics, user_bias)``: the interaction columns (plus ``"_review_topic"``), each
        user's interests and rating bias.
    """
    n_items, n_topics = len(item_topic), len(vocab)
    if len({len(w) for w in vocab}) != 1:
        raise ValueError("every topic needs the same number of words for the vectorised generator")
    k = np.minimum(rng.integers(2, 4, n_users), n_topics)
    interests = np.argsort(rng.random((n_users, n_topics)), axis=1)[:, :3]
    bias = rng.normal(0.0, 0.5, n_users)
    counts = np.minimum(rng.integers(min_reviews, max_reviews + 1, n_users), n_items)
    offsets = rng.integers(0, 3 * 365 * DAY, n_users)
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_rows = len(user)
    first = np.zeros(n_rows, dtype=bool)
    first[starts] = True
    ku = k[user]

    # the active interest: a position in the user's list that moves by 1..k-1 on a switch
    u = rng.random((n_rows, 2))
    step = np.where(
        first,
        (u[:, 0] * ku).astype(np.int64) % ku,
        (u[:, 0] >= stay_prob) * (1 + (u[:, 1] * (ku - 1)).astype(np.int64)),
    )
    csum = np.cumsum(step)
    position = (csum - np.repeat(csum[starts] - step[starts], counts)) % ku
    active = interests[user, position]

    order = np.argsort(item_topic, kind="stable")
    topic_size = np.bincount(item_topic, minlength=n_topics)
    topic_start = np.concatenate([[0], np.cumsum(topic_size)[:-1]])
    item = _draw_items(rng.random((n_rows, 2)), active, order, topic_start, topic_size, n_items, on_topic_prob)

    def redraw(rows: np.ndarray) -> np.ndarray:
        return _draw_items(
            rng.random((len(rows), 2)), active[rows], order, topic_start, topic_size, n_items, on_topic_prob
        )

    _fix_repeats(user, item, redraw, interests, k, item_topic, n_items)

    off = np.ones(n_rows, dtype=bool)
    for j in range(3):
        off &= ~((j < ku) & (interests[user, j] == item_topic[item]))
    noise = rng.normal(0.0, 0.7, n_rows)
    rating = np.clip(np.rint(3.8 + bias[user] + quality[item] - off + noise), 1, 5)
    gaps = (rng.exponential(10 * DAY, n_rows) + 3600 + rng.random(n_rows) * DAY).astype(np.int64)
    gsum = np.cumsum(gaps)
    times = START + offsets[user] + gsum - np.repeat(gsum[starts] - gaps[starts], counts)

    width = len(vocab[0])
    words = np.asarray([list(w) for w in vocab], dtype=object).reshape(n_topics, width)
    text, summary = _texts(words, item_topic[item], rating, rng.random((n_rows, 11)))

    user_names = np.asarray([f"u{j:04d}" for j in range(n_users)], dtype=object)
    columns = {
        USER_COL: user_names[user],
        ITEM_COL: np.asarray(item_ids, dtype=object)[item],
        RATING_COL: rating,
        TIME_COL: times,
        TEXT_COL: text,
        SUMMARY_COL: summary,
        ORDER_COL: np.arange(n_rows, dtype=np.int64),
        "_review_topic": active.astype(np.int64),
    }
    user_topics = {str(user_names[j]): [int(t) for t in interests[j, : k[j]]] for j in range(n_users)}
    user_bias = {str(user_names[j]): float(bias[j]) for j in range(n_users)}
    return columns, user_topics, user_bias
