"""Measure the model as it is used: cold-start users, unseen items, faithful explanations, latency.
(Above 500 lines on purpose: four measurements on one split and one trained model, run by one command.)

``python -m textinterest.protocol.serving_eval NAME [--output FILE.json]`` runs, in one process:

Protocol. A seeded 20% of users ("cold users") and 15% of items ("unseen items") are taken out of
training entirely. The other users are split leave-last-out; interactions with unseen items are
dropped from their training and validation rows. The interest model (ranking, the settings of
``textinterest evaluate``) is trained on what is left, with early stopping on validation.

1. Cold-start users: for every cold user, the target is their last review and the history is the
   m = 1, 2, 3 reviews just before it, passed to :func:`~textinterest.models.recommend.history_scores`
   (no retraining). Candidates: every catalogue item except those in the history; targets that are
   unseen items are left out (counted). Peers on the same cases: popularity (training counts) and the
   text profile (user = mean of the history's review vectors, score = cosine with the item's text vector).
2. Unseen items: test rows of training users whose item is an unseen item. Candidates: the catalogue
   (minus the user's training items) plus every unseen item, scored from its text alone: its description
   when the data has one, else the mean vector of its reviews by other users written *before* the test
   review (time-safe; items with none get the mean text vector). Same peers (popularity counts are 0 for
   unseen items, ties broken at random in expectation).
3. Faithfulness of ``explain()`` by deletion: for training users whose test item is in the catalogue and
   who have >= 2 past reviews, the score of the test item is recomputed without the review that
   ``explain()`` weighs most, and without one other review drawn at random; the mean absolute score
   changes over users and their ratio are reported, with the best single deletion (oracle) and the
   per-user Spearman correlation between weights and deletion effects.
4. Latency (CPU): the model is saved, loaded back, and ``recommend`` is timed for known users and for
   new users with 5 reviews (texts embedded on the fly, no embedding cache), p50 / p95 in ms.

HR@10 with ties counts the expected hit under random tie-breaking.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from textinterest.constants import ITEM_COL, ITEM_TEXT_COL, RATING_COL, SEED, TIME_COL, USER_COL

__all__ = ["deletion_effects", "format_tables", "hit_at_k", "measure_latency", "run_serving_evaluation"]


def hit_at_k(scores: np.ndarray, target: int, k: int = 10) -> float:
    """Expected hit of ``target`` in the top ``k`` of ``scores`` (-inf = excluded), ties broken at random."""
    s = scores[target]
    higher = int((scores > s).sum())
    tied = int((scores == s).sum()) - 1
    return float(np.clip((k - higher) / (tied + 1), 0.0, 1.0))


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    from textinterest.protocol.experiments import review_texts

    texts = review_texts(df)
    ratings = (
        pd.to_numeric(df[RATING_COL], errors="coerce").to_numpy() if RATING_COL in df else np.full(len(df), np.nan)
    )
    return [
        {
            "text": t if t.strip() else "(no text)",
            "timestamp": int(ts),
            "item_id": item,
            "rating": None if not np.isfinite(r) else float(r),
        }
        for t, ts, item, r in zip(texts, df[TIME_COL].to_numpy(), df[ITEM_COL].to_numpy(), ratings)
    ]


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    from textinterest.datasets.splits import order_key

    return df.iloc[np.lexsort((order_key(df), df[USER_COL].to_numpy().astype(str)))]


def _cosine(user: np.ndarray, items: np.ndarray) -> np.ndarray:
    u = user / max(float(np.linalg.norm(user)), 1e-12)
    return items @ u / np.maximum(np.linalg.norm(items, axis=1), 1e-12)


def _summary(values: list[float], seed: int = 0) -> dict[str, Any]:
    arr = np.asarray(values, np.float64)
    if not arr.size:
        return {"n": 0, "mean": None}
    rng = np.random.default_rng(seed)
    boot = rng.choice(arr, size=(1000, arr.size)).mean(1)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
    }


# --------------------------------------------------------------------------- 1. cold-start users


def _cold_start(
    model: Any, cold: pd.DataFrame, counts: np.ndarray, item_vectors: np.ndarray, say: Callable[[str], None]
) -> dict[str, Any]:
    from textinterest.models.recommend import history_scores

    out: dict[str, Any] = {}
    cases = {m: {"interest": [], "popularity": [], "text_profile": []} for m in (1, 2, 3)}
    skipped = 0
    for _, rows in _ordered(cold).groupby(USER_COL, sort=False):
        recs = _records(rows)
        target = int(model.item_index.index_of([recs[-1]["item_id"]])[0])
        if target < 0:
            skipped += 1
            continue
        for m in (1, 2, 3):
            if len(recs) < m + 1:
                continue
            history = recs[-1 - m : -1]
            scores, info = history_scores(model, history)
            vectors = model.text_encoder_.embed([r["text"] for r in history])
            exclude = info["exclude"]
            for name, s in (
                ("interest", scores),
                ("popularity", counts.copy()),
                ("text_profile", _cosine(np.asarray(vectors, np.float64).mean(0), item_vectors)),
            ):
                s = np.asarray(s, np.float64).copy()
                s[exclude] = -np.inf
                cases[m][name].append(hit_at_k(s, target))
    for m, per in cases.items():
        out[f"history_{m}"] = {name: _summary(v, m) for name, v in per.items()}
        say(
            f"cold start, {m} review(s): "
            + ", ".join(f"{k} {v['mean']:.4f}" for k, v in out[f"history_{m}"].items() if v["mean"] is not None)
        )
    out["skipped_target_unseen_item"] = skipped
    return out


# --------------------------------------------------------------------------- 2. unseen items


def _unseen_item_vectors(
    model: Any,
    held: list[Any],
    full: pd.DataFrame,
    items: pd.DataFrame | None,
    user: Any,
    before: int,
    review_vec: dict[int, np.ndarray],
    mean: np.ndarray,
) -> tuple[np.ndarray, str]:
    described = {}
    if items is not None and ITEM_TEXT_COL in items.columns:
        described = {i: t for i, t in zip(items[ITEM_COL], items[ITEM_TEXT_COL]) if isinstance(t, str) and t.strip()}
    if described and all(i in described for i in held):
        return np.asarray(model.text_encoder_.embed([described[i] for i in held]), np.float32), "description"
    out = np.empty((len(held), len(mean)), np.float32)
    sub = full[(full[TIME_COL] < before) & (full[USER_COL] != user)]
    by_item = sub.groupby(ITEM_COL).indices
    for j, item in enumerate(held):
        rows = by_item.get(item)
        out[j] = mean if rows is None else np.mean([review_vec[int(sub.index[r])] for r in rows], axis=0)
    return out, "earlier reviews by other users"


def _unseen_items(
    model: Any,
    test: pd.DataFrame,
    held: list[Any],
    full: pd.DataFrame,
    items: pd.DataFrame | None,
    counts: np.ndarray,
    item_vectors: np.ndarray,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from textinterest.models.recommend import _known_components, _seen, score_text_items
    from textinterest.protocol.experiments import review_texts

    held_set = set(held)
    cases = test[test[ITEM_COL].isin(held_set) & test[USER_COL].isin(set(model.user_index.ids))]
    # vectors of every review of an unseen item (for the time-safe item text), embedded once
    rows = full[full[ITEM_COL].isin(held_set)]
    vecs = np.asarray(
        model.text_encoder_.embed([t if t.strip() else "(no text)" for t in review_texts(rows)]), np.float32
    )
    review_vec = {int(label): v for label, v in zip(rows.index, vecs)}
    mean = model.module.item_text[0].cpu().numpy()
    held_pos = {item: j for j, item in enumerate(held)}
    per = {"interest": [], "popularity": [], "text_profile": []}
    source = None
    model.module.eval()
    for _, row in cases.iterrows():
        u = int(model.user_index.index_of([row[USER_COL]])[0])
        new_vecs, source = _unseen_item_vectors(
            model, held, full, items, row[USER_COL], int(row[TIME_COL]), review_vec, mean
        )
        comps, users = _known_components(model, u)
        with torch.no_grad():
            catalogue, _ = model.module.score_candidates(comps, users)
        interest = np.concatenate([catalogue[0].float().cpu().numpy(), score_text_items(model, comps, users, new_vecs)])
        s, e = int(model.seq.starts[u]), int(model.seq.starts[u] + model.seq.lengths[u])
        profile = np.asarray(model.text_arrays()[0][s:e], np.float64).mean(0)
        text = np.concatenate([_cosine(profile, item_vectors), _cosine(profile, new_vecs)])
        pop = np.concatenate([counts, np.zeros(len(held))])
        target = len(counts) + held_pos[row[ITEM_COL]]
        for name, scores in (("interest", interest), ("popularity", pop), ("text_profile", text)):
            scores = np.asarray(scores, np.float64).copy()
            scores[_seen(model, u)] = -np.inf
            per[name].append(hit_at_k(scores, target))
    out = {name: _summary(v) for name, v in per.items()}
    out["item_text_source"] = source
    out["n_unseen_items"] = len(held)
    say(
        "unseen items: "
        + ", ".join(f"{k} {v['mean']:.4f}" for k, v in out.items() if isinstance(v, dict) and v["mean"] is not None)
    )
    return out


# --------------------------------------------------------------------------- 3. faithfulness


def deletion_effects(model: Any, user: Any, item: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Score changes from deleting each past review of a training user, one at a time.

    Args:
        model: a fitted interest model.
        user: a training user id.
        item: a catalogue item id.

    Returns:
        ``(weights from explain (n,), |score change| when review j is deleted (n,), full score)``,
        both over the user's last ``max_history`` reviews in time order.
    """
    from textinterest.models.recommend import _known_history, explain

    u = int(model.user_index.index_of([user])[0])
    i = int(model.item_index.index_of([item])[0])
    weights = np.asarray(explain(model, user, item, top_n=0)["weights"])
    batch, _ = _known_history(model, u)
    n = int(batch["mask"][0].sum())
    keep = torch.tensor([[k for k in range(n) if k != j] for j in range(n)])  # (n, n - 1)
    variants = {key: value[0][keep] for key, value in batch.items()}  # every tensor (n, n - 1, ...)
    # the review after a deleted one is now that much later than its predecessor
    gap = torch.expm1(batch["log_gap"][0].double())  # (n,) days
    first_is_start = int(model.seq.lengths[u]) <= model.config.max_history  # window starts at the first review
    new_gap = gap[keep].clone()
    for j in range(n - 1):  # variant j: old review j + 1 now sits at position j
        new_gap[j, j] = 0.0 if (j == 0 and first_is_start) else gap[j] + gap[j + 1]
    variants["log_gap"] = torch.log1p(new_gap).float()
    ut, it = model.as_tensor([u + 1] * n), model.as_tensor([i + 1] * n)
    with torch.no_grad():
        comps, _, _ = model.module.final_components(batch)
        full, _ = model.module.score_pairs(comps, ut[:1], it[:1])
        comps_del, _, _ = model.module.final_components(variants)
        deleted, _ = model.module.score_pairs(comps_del, ut, it)
    s0 = float(full[0])
    return weights, np.abs(deleted.float().cpu().numpy() - s0), s0


def _faithfulness(model: Any, test: pd.DataFrame, seed: int, say: Callable[[str], None]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    top, rand, best, rhos, top_is_best = [], [], [], [], []
    model.module.eval()
    for _, row in test.iterrows():
        u = int(model.user_index.index_of([row[USER_COL]])[0])
        if u < 0 or int(model.item_index.index_of([row[ITEM_COL]])[0]) < 0 or model.seq.lengths[u] < 2:
            continue
        weights, effect, _ = deletion_effects(model, row[USER_COL], row[ITEM_COL])
        j_top = int(np.argmax(weights))
        others = [j for j in range(len(weights)) if j != j_top]
        top.append(effect[j_top])
        rand.append(effect[int(rng.choice(others))])
        best.append(effect.max())
        top_is_best.append(float(effect[j_top] == effect.max()))
        if len(weights) > 2 and np.ptp(effect) > 0 and np.ptp(weights) > 0:
            rhos.append(float(spearmanr(weights, effect)[0]))
    top_a, rand_a = np.asarray(top), np.asarray(rand)
    boot = np.random.default_rng(seed + 1).integers(0, len(top_a), size=(1000, len(top_a)))
    ratios = top_a[boot].mean(1) / np.maximum(rand_a[boot].mean(1), 1e-12)
    out = {
        "n_users": len(top),
        "mean_abs_change_top": float(top_a.mean()),
        "mean_abs_change_random": float(rand_a.mean()),
        "ratio": float(top_a.mean() / max(rand_a.mean(), 1e-12)),
        "ratio_ci95": [float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))],
        "mean_abs_change_best_single": float(np.mean(best)),
        "share_top_is_most_influential": float(np.mean(top_is_best)),
        "mean_spearman_weight_vs_effect": float(np.mean(rhos)) if rhos else None,
        "share_top_beats_random": float(np.mean(top_a > rand_a)),
    }
    say(f"faithfulness: ratio {out['ratio']:.2f} over {out['n_users']} users")
    return out


# --------------------------------------------------------------------------- 4. latency


def measure_latency(folder: str | Path, reviews: pd.DataFrame, repeats: int = 200, seed: int = 0) -> dict[str, Any]:
    """p50 / p95 of ``recommend`` (k = 10) for known users and for new users with 5 reviews.

    Args:
        folder: a saved recommender (loaded here, as a server would: no embedding cache).
        reviews: interactions whose texts make the new users' histories (5 drawn at random per call).
        repeats: timed calls of each kind (after 3 warm-up calls).
        seed: seed of the draws.

    Returns:
        wall-clock and process CPU milliseconds (p50, p95) of both kinds of call, the threads,
        the CPU and the load average during the run (other jobs on the machine lengthen wall time).
    """
    import os

    from textinterest.models.recommend import recommend, recommend_for_history
    from textinterest.models.registry import load_recommender
    from textinterest.utils import cpu_model

    rng = np.random.default_rng(seed)
    loaded = load_recommender(folder)
    users = rng.choice(loaded.user_index.ids, size=repeats)
    pool = _records(reviews)
    histories = [[pool[j] for j in rng.choice(len(pool), size=5, replace=False)] for _ in range(repeats)]
    for j in range(3):  # warm-up: the first calls load the encoder and allocate
        recommend(loaded, users[j], 10)
        recommend_for_history(loaded, histories[j], 10)
    times: dict[str, list[tuple[float, float]]] = {"known_user": [], "new_user_5_reviews": []}
    load_before = os.getloadavg()[0]
    for user, history in zip(users, histories):
        for kind, call in (
            ("known_user", lambda u=user: recommend(loaded, u, 10)),
            ("new_user_5_reviews", lambda h=history: recommend_for_history(loaded, h, 10)),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            times[kind].append((time.perf_counter() - wall, time.process_time() - cpu))
    out: dict[str, Any] = {"repeats": repeats, "n_items": len(loaded.item_index)}
    for kind, pairs in times.items():
        arr = np.asarray(pairs) * 1000.0  # (repeats, 2) ms
        out[f"{kind}_ms"] = {
            "p50": float(np.quantile(arr[:, 0], 0.5)),
            "p95": float(np.quantile(arr[:, 0], 0.95)),
            "cpu_p50": float(np.quantile(arr[:, 1], 0.5)),
            "cpu_p95": float(np.quantile(arr[:, 1], 0.95)),
        }
    out.update(torch_threads=torch.get_num_threads(), cpu=cpu_model(), load_average=[load_before, os.getloadavg()[0]])
    return out


def _latency(model: Any, cold: pd.DataFrame, seed: int, repeats: int, say: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="textinterest-latency-") as tmp:
        model.save(tmp)
        out = measure_latency(tmp, cold, repeats, seed)
    known_p50, new_p50 = out["known_user_ms"]["p50"], out["new_user_5_reviews_ms"]["p50"]
    say(f"latency: known user p50 {known_p50:.1f} ms, new user (5 reviews) p50 {new_p50:.1f} ms")
    return out


# --------------------------------------------------------------------------- driver


def run_serving_evaluation(
    name: str,
    *,
    dataset: Any = None,
    data_home: str | None = None,
    encoder: str = "default",
    max_length: int = 128,
    seed: int = 0,
    cold_share: float = 0.2,
    item_share: float = 0.15,
    epochs: int | None = None,
    latency_repeats: int = 200,
    interest_config: dict[str, Any] | None = None,
    json_out: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the four measurements of the module docstring on one data set.

    Args:
        name: data set name (e.g. "synthetic", "amazon:Musical_Instruments").
        dataset: an already loaded ``ReviewDataset`` (skips loading ``name``).
        data_home: data folder (default ``$TEXTINTEREST_DATA``).
        encoder: text encoder ("default" = the packaged MiniLM).
        max_length: token limit per review.
        seed: seed of the user / item hold-out, the training and the random deletions.
        cold_share: share of users held out as cold-start users.
        item_share: share of items held out as unseen items.
        epochs: cap on training epochs.
        latency_repeats: timed calls per latency figure.
        interest_config: ``InterestConfig`` overrides.
        json_out: write the result here.
        progress: called with one line per stage.

    Returns:
        ``{"dataset", "protocol", "sizes", "cold_start", "unseen_items", "faithfulness", "latency", "seconds"}``.
    """
    from textinterest.datasets.splits import split_interactions
    from textinterest.protocol.pipeline import fit_on_split

    say = progress or (lambda message: None)
    t0 = time.perf_counter()
    if dataset is None:
        from textinterest.datasets import load_dataset

        dataset = load_dataset(name, data_home=data_home)
    df = dataset.interactions
    rng = np.random.default_rng(SEED + seed)
    users, items = pd.unique(df[USER_COL]), pd.unique(df[ITEM_COL])
    cold_users = set(rng.choice(users, size=int(round(cold_share * len(users))), replace=False).tolist())
    held = sorted(rng.choice(items, size=int(round(item_share * len(items))), replace=False).tolist())
    cold = df[df[USER_COL].isin(cold_users)]
    parts = split_interactions(df[~df[USER_COL].isin(cold_users)], how="leave-last-out", seed=SEED)
    train = parts.train[~parts.train[ITEM_COL].isin(set(held))]
    val = parts.val[~parts.val[ITEM_COL].isin(set(held))]
    sizes = {
        "n_users": len(users),
        "n_items": len(items),
        "cold_users": len(cold_users),
        "unseen_items": len(held),
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(parts.test),
    }
    say(f"{name}: {sizes}")
    model, fit_meta = fit_on_split(
        train,
        val,
        model="interest",
        task="ranking",
        items=dataset.items,
        ground_truth=getattr(dataset, "ground_truth", None),
        seed=seed,
        encoder=encoder,
        max_length=max_length,
        epochs=epochs,
        interest_config=interest_config,
        progress=say,
    )
    counts = np.bincount(model.seq.item, minlength=len(model.item_index)).astype(np.float64)
    item_vectors = model.module.item_text[1:].cpu().numpy().astype(np.float64)
    result: dict[str, Any] = {
        "dataset": name,
        "protocol": {"cold_share": cold_share, "item_share": item_share, "seed": seed, "k": 10, "task": "ranking"},
        "sizes": sizes,
        "fit": fit_meta,
    }
    result["cold_start"] = _cold_start(model, cold, counts, item_vectors, say)
    result["unseen_items"] = _unseen_items(model, parts.test, held, df, dataset.items, counts, item_vectors, say)
    result["faithfulness"] = _faithfulness(model, parts.test[~parts.test[ITEM_COL].isin(set(held))], seed, say)
    result["latency"] = _latency(model, cold, seed, latency_repeats, say)
    result["seconds"] = time.perf_counter() - t0
    if json_out is not None:
        from textinterest.utils import atomic_write_text, json_default

        atomic_write_text(json_out, json.dumps(result, indent=1, default=json_default) + "\n")
    return result


def format_tables(results: list[dict[str, Any]]) -> str:
    """Markdown tables (HR@10 by case, faithfulness, latency) of one or more :func:`run_serving_evaluation` results."""
    from textinterest.utils import markdown_table

    def cell(summary: dict[str, Any]) -> str:
        return "–" if summary.get("mean") is None else f"{summary['mean']:.3f}"

    rows = []
    for r in results:
        cases = [(f"cold user, {m} review(s)", r["cold_start"][f"history_{m}"]) for m in (1, 2, 3)]
        cases.append(("unseen item", r["unseen_items"]))
        for label, per in cases:
            rows.append(
                [
                    r["dataset"],
                    label,
                    per["interest"]["n"],
                    cell(per["interest"]),
                    cell(per["popularity"]),
                    cell(per["text_profile"]),
                ]
            )
    hr = markdown_table(["data", "case", "n", "interest", "popularity", "text profile"], rows)
    faith = markdown_table(
        [
            "data",
            "users",
            "mean abs change: top review",
            "random other review",
            "ratio (95% CI)",
            "best single review",
            "top is the most influential",
            "Spearman(weight, effect)",
        ],
        [
            [
                r["dataset"],
                f["n_users"],
                f"{f['mean_abs_change_top']:.4f}",
                f"{f['mean_abs_change_random']:.4f}",
                f"{f['ratio']:.2f} ({f['ratio_ci95'][0]:.2f}–{f['ratio_ci95'][1]:.2f})",
                f"{f['mean_abs_change_best_single']:.4f}",
                f"{f['share_top_is_most_influential']:.0%}",
                "–" if f["mean_spearman_weight_vs_effect"] is None else f"{f['mean_spearman_weight_vs_effect']:.2f}",
            ]
            for r in results
            for f in [r["faithfulness"]]
        ],
    )
    lat_rows = []
    for r in results:
        lat = r["latency"]
        for kind, label in (("known_user_ms", "known user"), ("new_user_5_reviews_ms", "new user, 5 reviews")):
            t = lat[kind]
            cpu = f"{t['cpu_p50']:.0f} / {t['cpu_p95']:.0f}" if "cpu_p50" in t else "–"
            lat_rows.append([r["dataset"], label, f"{t['p50']:.0f} / {t['p95']:.0f}", cpu])
    latency = markdown_table(["data", "recommend(k=10) for", "wall ms p50 / p95", "CPU ms p50 / p95"], lat_rows)
    return "\n\n".join([hr, faith, latency])


def main(argv: list[str] | None = None) -> int:
    """``python -m textinterest.protocol.serving_eval NAME [--output FILE] [--seed N] [--epochs N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m textinterest.protocol.serving_eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("name")
    parser.add_argument("--output", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--encoder", default="default")
    parser.add_argument("--latency-repeats", type=int, default=200)
    parser.add_argument(
        "--latency-of",
        default=None,
        metavar="DIR",
        help="only time a saved model (new users' texts drawn from data set NAME)",
    )
    parser.add_argument(
        "--faithfulness-of",
        default=None,
        metavar="DIR",
        help="only the deletion test of a model saved by 'textinterest train NAME' (same split)",
    )
    parser.add_argument("--max-users", type=int, default=None, help="with --faithfulness-of: a seeded sample of users")
    args = parser.parse_args(argv)
    if args.faithfulness_of is not None:
        from textinterest.datasets import load_dataset
        from textinterest.datasets.splits import split_interactions
        from textinterest.models.registry import load_recommender

        model = load_recommender(args.faithfulness_of)
        test = split_interactions(load_dataset(args.name).interactions, how="leave-last-out", seed=SEED).test
        if args.max_users is not None and args.max_users < len(test):
            test = test.sample(n=args.max_users, random_state=args.seed)
        result = {
            "dataset": args.name,
            "model": str(args.faithfulness_of),
            "faithfulness": _faithfulness(model, test, args.seed, lambda m: print(m, file=sys.stderr)),
        }
        if args.output:
            from textinterest.utils import atomic_write_text, json_default

            atomic_write_text(args.output, json.dumps(result, indent=1, default=json_default) + "\n")
        print(json.dumps(result, indent=1))
        return 0
    if args.latency_of is not None:
        from textinterest.datasets import load_dataset

        result = measure_latency(args.latency_of, load_dataset(args.name).interactions, args.latency_repeats, args.seed)
        if args.output:
            from textinterest.utils import atomic_write_text, json_default

            atomic_write_text(args.output, json.dumps(result, indent=1, default=json_default) + "\n")
        print(json.dumps(result, indent=1))
        return 0
    result = run_serving_evaluation(
        args.name,
        encoder=args.encoder,
        seed=args.seed,
        epochs=args.epochs,
        latency_repeats=args.latency_repeats,
        json_out=args.output,
        progress=lambda m: print(f"[serving_eval] {m}", file=sys.stderr, flush=True),
    )
    print(format_tables([result]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
