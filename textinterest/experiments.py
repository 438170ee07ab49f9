"""The ``evaluate`` pipeline: one data set, one split, every model side by side, several seeds.

:func:`run_evaluation` does, in one process:

1. load the data set and split it (default leave-last-out: per user, last -> test, second last
   -> validation, the rest -> train; ties broken by source order);
2. embed the *training* review texts once with :class:`~textinterest.features.BertFeatureExtractor`
   (cached on disk) -- validation and test texts are never embedded, so they cannot leak;
3. score the sentiment of the training reviews with ``SentimentClassifier(mode="frozen")``
   fitted on training reviews only (a slice of train for its early stopping);
4. train and evaluate, for every seed: the baselines (:func:`textinterest.baselines.run_baselines`),
   ID-only MF, the ID-only sequential LSTM, the dynamic interest model and its ablations
   (no text, no sentiment, no LSTM, K = 1, no CF term); early stopping and the small
   hyper-parameter grid look at the validation split only;
5. aggregate mean and standard deviation over seeds.

:func:`format_results_table` renders the result as a markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, ITEM_TEXT_COL, RANKING_KS, RATING_COL, SEED, SUMMARY_COL, TEXT_COL, USER_COL

__all__ = [
    "INTEREST_VARIANTS",
    "DEFAULT_MODELS",
    "review_texts",
    "build_text_features",
    "cold_start_counts",
    "held_out_text_duplicates",
    "run_evaluation",
    "format_results_table",
]

# name -> InterestConfig overrides (the ablations of the full model)
INTEREST_VARIANTS: dict[str, dict[str, Any]] = {
    "interest": {},
    "interest-no-text": {"use_text": False},
    "interest-no-sentiment": {"use_sentiment": False},
    "interest-no-lstm": {"use_lstm": False},
    "interest-k1": {"n_components": 1},
    "interest-no-cf": {"use_cf": False},
}
TORCH_BASELINES = ("mf", "seq-lstm")
DEFAULT_MODELS = ("baselines",) + TORCH_BASELINES + tuple(INTEREST_VARIANTS)
# Run only when asked for: the full model with its encoder fine-tuned jointly (a GPU job).
JOINT_MODEL = "interest+joint"
VALID_MODELS = DEFAULT_MODELS + (JOINT_MODEL,)
METRICS = ("rmse", "mae") + tuple(f"{m}@{k}" for k in RANKING_KS for m in ("hr", "ndcg")) + ("mrr",)

# Small grid searched on the validation split (seed 0, full model); the choice is reused by the ablations.
TUNING_GRID: tuple[dict[str, Any], ...] = (
    {"dropout": 0.1, "hidden": 64},
    {"dropout": 0.5, "hidden": 32},
)


def review_texts(df: pd.DataFrame) -> list[str]:
    """The text embedded for each review: its body, or its summary when the body is blank."""
    body = df[TEXT_COL].fillna("").astype(str).tolist() if TEXT_COL in df else [""] * len(df)
    summary = df[SUMMARY_COL].fillna("").astype(str).tolist() if SUMMARY_COL in df else [""] * len(df)
    return [b if b.strip() else s for b, s in zip(body, summary)]


def _log(progress: Any, message: str) -> None:
    if callable(progress):
        progress(message)
    elif progress:
        print(f"[evaluate] {message}", file=sys.stderr, flush=True)


def _sentiment_scores(train: pd.DataFrame, texts: list[str], seed: int, progress: Any, encoder: str = "default",
                      device: str = "auto") -> tuple[np.ndarray | None, dict]:
    """Frozen-encoder sentiment scores of the training reviews, fitted on training reviews only."""
    try:
        from textinterest.sentiment import SentimentClassifier, sentiment_labels
    except ImportError as exc:  # sentiment module missing
        return None, {"status": "unavailable", "reason": f"import failed: {exc}"}
    ratings = pd.to_numeric(train[RATING_COL], errors="coerce").to_numpy() if RATING_COL in train else np.full(len(train), np.nan)
    labels = np.asarray(sentiment_labels(ratings, scheme="binary"))  # -1: unrated or neutral (left out)
    usable = np.flatnonzero(labels >= 0)
    if usable.size < 20 or len(np.unique(labels[usable])) < 2:
        return None, {"status": "skipped", "reason": "too few rated training reviews with both labels"}
    rng = np.random.default_rng(seed)
    perm = rng.permutation(usable)
    n_val = max(len(perm) // 10, 1)
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    start = time.perf_counter()
    try:
        # fast=None: the same encoder path as the review features, so the embedding cache is shared
        clf = SentimentClassifier(encoder, mode="frozen", fast=None, seed=seed, device=device)
        clf.fit([texts[i] for i in fit_idx], labels[fit_idx], [texts[i] for i in val_idx], labels[val_idx])
        scores = np.clip(np.asarray(clf.score(texts), dtype=np.float32), -1.0, 1.0)
    except Exception as exc:  # noqa: BLE001 - a failing classifier must not sink the whole evaluation
        _log(progress, f"sentiment classifier failed ({type(exc).__name__}: {exc}); using no sentiment")
        return None, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    info = {"status": "ok", "mode": "frozen", "n_fit": int(fit_idx.size), "n_val": int(val_idx.size),
            "seconds": time.perf_counter() - start}
    held = scores[val_idx]
    info["val_accuracy"] = float(((held > 0).astype(int) == labels[val_idx]).mean())
    return scores, info


def build_text_features(
    train: pd.DataFrame,
    extractor: Any,
    *,
    items: pd.DataFrame | None = None,
    sentiment: np.ndarray | None = None,
):
    """Text inputs of the interest model from the TRAINING rows only.

    Args:
        train: training interactions.
        extractor: object with ``embed(texts) -> (N, D)`` (e.g. a BertFeatureExtractor).
        items: optional item metadata with ``item_text``; its texts replace review means.
        sentiment: (len(train),) scores in [-1, 1], or None.

    Returns:
        :class:`~textinterest.models.interest.TextFeatures`.
    """
    from textinterest.models.interest import TextFeatures

    texts = review_texts(train)
    vectors = np.asarray(extractor.embed(texts), dtype=np.float32)
    item_ids = item_vectors = None
    if items is not None and ITEM_TEXT_COL in items.columns and ITEM_COL in items.columns:
        meta = items[[ITEM_COL, ITEM_TEXT_COL]].dropna()
        meta = meta[meta[ITEM_TEXT_COL].astype(str).str.strip() != ""].drop_duplicates(ITEM_COL)
        meta = meta[meta[ITEM_COL].isin(set(train[ITEM_COL]))]
        if len(meta):
            item_ids = meta[ITEM_COL].to_numpy(dtype=object)
            item_vectors = np.asarray(extractor.embed(meta[ITEM_TEXT_COL].astype(str).tolist()), dtype=np.float32)
    return TextFeatures(review_vectors=vectors, sentiment=sentiment, texts=texts, item_ids=item_ids, item_vectors=item_vectors)


def cold_start_counts(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    """Users with 0 / 1 training reviews and items unseen in training, among validation and test rows."""
    n_train = train.groupby(USER_COL).size()
    items = set(train[ITEM_COL])
    out: dict[str, int] = {}
    for name, part in (("val", val), ("test", test)):
        hist = part[USER_COL].map(n_train).fillna(0).to_numpy()
        out[f"{name}_rows"] = int(len(part))
        out[f"{name}_users_no_history"] = int((hist == 0).sum())
        out[f"{name}_users_one_review"] = int((hist == 1).sum())
        out[f"{name}_users_le2_reviews"] = int((hist <= 2).sum())
        out[f"{name}_items_unseen"] = int((~part[ITEM_COL].isin(items)).sum())
    return out


def held_out_text_duplicates(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    """Validation / test rows whose exact (non-blank) text the same user also wrote in training.

    Such rows (e.g. one review posted for several variants of a product) let any model that
    reads a user's past reviews or ratings copy the answer; results on them are not comparable.
    """
    def key(df: pd.DataFrame) -> pd.Series:
        texts = pd.Series(review_texts(df), index=df.index)
        return df[USER_COL].astype(str) + "\x1f" + texts

    texts = pd.Series(review_texts(train), index=train.index)
    seen = set(key(train)[texts.str.strip() != ""])
    return {f"{name}_same_user_text_in_train": int(key(part).isin(seen).sum()) for name, part in (("val", val), ("test", test))}


def _subsample_users(df: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    if max_users is None:
        return df
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
    users = pd.unique(df[USER_COL])
    if len(users) <= max_users:
        return df
    keep = set(np.random.default_rng(seed).choice(users, size=max_users, replace=False).tolist())
    return df[df[USER_COL].isin(keep)]


def _evaluate_model(model: Any, split: Any, task: str, ks: Sequence[int]) -> dict[str, float]:
    from textinterest.evaluation import evaluate_ranking, mae, rmse

    test = split.test
    if task == "rating":
        rated = test[pd.to_numeric(test[RATING_COL], errors="coerce").notna()] if RATING_COL in test else test.iloc[:0]
        if not len(rated):
            return {}
        pred = model.predict(rated)
        truth = rated[RATING_COL].to_numpy(dtype=np.float64)
        return {"rmse": rmse(truth, pred), "mae": mae(truth, pred), "n_fallback": int(model.n_fallback_)}
    ids = model.user_index.ids
    result = evaluate_ranking(lambda u: model.score_items(ids[u]), split.train, test, model.user_index, model.item_index, ks=ks)
    return {k: v for k, v in result.items() if k not in ("n_users", "n_items")}


def _aggregate(runs: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds (ddof=1; 0 for a single seed) of each metric per model."""
    rows = []
    for name in order:
        mine = [r for r in runs if r["model"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"model": name, "n_seeds": len({r["seed"] for r in mine})}
        keys = sorted({k for r in mine for k, v in r.items() if isinstance(v, (int, float)) and k not in ("seed",)})
        for key in keys:
            values = np.array([r[key] for r in mine if key in r and r[key] is not None], dtype=np.float64)
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            row[key] = float(values.mean())
            if key in METRICS or key.endswith("_seconds"):
                row[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        rows.append(row)
    return rows


def run_evaluation(
    name: str,
    *,
    split: str = "leave-last-out",
    seeds: Sequence[int] = (0, 1, 2),
    data_home: str | Path | None = None,
    encoder: str = "default",
    models: Sequence[str] | None = None,
    tasks: Sequence[str] = ("rating", "ranking"),
    max_users: int | None = None,
    device: str = "auto",
    json_out: str | Path | None = None,
    progress: bool | Callable[[str], None] | None = None,
    ks: Sequence[int] = RANKING_KS,
    tune: bool = True,
    epochs: int | None = None,
    extractor: Any = None,
    dataset: Any = None,
    sentiment: str = "frozen",
    joint_layers: int | None = None,
    joint_max_length: int = 128,
    interest_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate every model on one data set and one split, over several seeds.

    Args:
        name: data set name for :func:`textinterest.datasets.load_dataset`.
        split: "leave-last-out" (default), "temporal" or "random".
        seeds: training seeds (>= 3 for headline numbers); each seed retrains every model.
        data_home: data folder (default: ``$TEXTINTEREST_DATA``).
        encoder: text encoder for :class:`~textinterest.features.BertFeatureExtractor`.
        models: subset of ``DEFAULT_MODELS`` ("baselines" = the Surprise / popularity set).
        tasks: "rating" and/or "ranking".
        max_users: evaluate on a seeded sample of this many users (quick runs).
        device: "auto", "cpu" or "cuda" for the torch models.
        json_out: write the result here as JSON.
        progress: True prints stage messages to stderr (a callable receives them instead);
            None is quiet.
        ks: ranking cutoffs.
        tune: pick dropout / hidden size of the interest model from ``TUNING_GRID`` on
            validation RMSE (rating) / NDCG@10 (ranking), first seed; False uses the first entry.
        epochs: cap on training epochs (default: each model's own).
        extractor: an object with ``embed(texts)`` replacing the BERT extractor (tests).
        dataset: an already loaded ``ReviewDataset`` (skips loading ``name``).
        sentiment: "frozen" (``SentimentClassifier(mode="frozen")`` fitted on training reviews)
            or "none" (sentiment inputs are zeros; the no-sentiment ablation then equals the full model).
        interest_config: :class:`~textinterest.models.interest.InterestConfig` fields overriding the
            defaults and the tuned values (e.g. ``{"hidden": 16}``) for the interest model and its ablations.
        joint_layers: for ``"interest+joint"`` (asked for in ``models``): how many top encoder
            layers to fine-tune with the interest model; None = all of them (a GPU job).
        joint_max_length: token limit per review while fine-tuning jointly.

    Returns:
        ``{"dataset", "split", "n_train", "n_val", "n_test", "seeds", "tasks", "results": [one
        row per model with metric means and ``<metric>_std``], "runs": [per seed rows],
        "timings": {...}, "cold_start": {...}, "sentiment": {...}, "tuning": {...},
        "config": {...}, "environment": {...}}``, plus ``"topic_recovery"`` (per seed and task,
        see :func:`~textinterest.models.interest.measure_topic_recovery`) on data with planted topics.
    """
    from textinterest.datasets.splits import split_interactions
    from textinterest.models.cf import MFRecommender, SequentialRecommender
    from textinterest.models.interest import InterestConfig, InterestRecommender
    from textinterest.training import TrainConfig, resolve_device

    tasks = tuple(tasks)
    bad = [t for t in tasks if t not in ("rating", "ranking")]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of ('rating', 'ranking'), got {tasks}")
    models = tuple(DEFAULT_MODELS if models is None else models)
    unknown = [m for m in models if m not in VALID_MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; valid values: {', '.join(VALID_MODELS)}")
    if joint_layers is not None and joint_layers < 0:
        raise ValueError(f"joint_layers must be None (all layers) or >= 0, got {joint_layers}")
    if sentiment not in ("frozen", "none"):
        raise ValueError(f"sentiment must be 'frozen' or 'none', got {sentiment!r}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    resolve_device(device)
    if interest_config:
        known = set(InterestConfig.__dataclass_fields__)
        bad_fields = sorted(set(interest_config) - known)
        if bad_fields:
            raise ValueError(f"interest_config has unknown InterestConfig field(s) {bad_fields}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # 1. data and split
    if dataset is None:
        from textinterest.datasets import load_dataset

        _log(progress, f"loading {name}")
        dataset = load_dataset(name, data_home=data_home)
    df = _subsample_users(dataset.interactions, max_users, SEED)
    parts = split_interactions(df, how=split, seed=SEED)
    timings["load_split_seconds"] = time.perf_counter() - t0
    train, val = parts.train, parts.val
    _log(progress, f"split {split}: train {len(train)}, val {len(val)}, test {len(parts.test)}")

    # 2-3. text features of the training rows only
    needs_text = any(m.startswith("interest") and INTEREST_VARIANTS.get(m, {}).get("use_text", True) for m in models)
    features, sentiment_info = None, {"status": "not needed"}
    if needs_text:
        t = time.perf_counter()
        if extractor is None:
            from textinterest.hashing import make_extractor  # "hashing[:D]" or a BERT encoder

            extractor = make_extractor(encoder, device=device, progress=bool(progress) if progress is not None else None)
        texts = review_texts(train)
        _log(progress, f"embedding {len(texts)} training reviews")
        features = build_text_features(train, extractor, items=dataset.items)
        timings["embed_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        if sentiment == "none":
            sentiment_info = {"status": "off", "reason": "sentiment='none'"}
        elif any(INTEREST_VARIANTS.get(m, {}).get("use_sentiment", True) for m in models if m.startswith("interest")):
            _log(progress, "fitting the frozen sentiment classifier on training reviews")
            scores, sentiment_info = _sentiment_scores(train, features.texts, SEED, progress, encoder, device)
            features = replace(features, sentiment=scores)
        timings["sentiment_seconds"] = time.perf_counter() - t

    def train_config(seed: int, **over: Any) -> TrainConfig:
        base = {"seed": seed, "device": device, "progress": False}
        if epochs is not None:
            base["epochs"] = epochs
        base.update(over)
        return TrainConfig(**base)

    n_items = train[ITEM_COL].nunique()
    gt = getattr(dataset, "ground_truth", None) or {}
    # K = number of planted topics on generated data; sampled softmax (256 items) on larger catalogues
    interest_base = InterestConfig(
        n_components=len(gt["topics"]) if "topics" in gt else 4,
        n_negatives=0 if n_items <= 512 else 256,
    )

    def make_interest(variant: str, task: str, seed: int, choice: dict[str, Any]) -> InterestRecommender:
        l2, bias_l2 = MFRecommender.DEFAULT_REG[task]  # the CF term is regularised like ID-only MF
        cfg = replace(interest_base, l2=l2, bias_l2=bias_l2, **choice)
        cfg = replace(cfg, **(interest_config or {}))
        cfg = replace(cfg, **INTEREST_VARIANTS.get(variant, {}))
        tc = train_config(seed, epochs=epochs or 40, batch_size=64, lr=3e-3, patience=3)
        if variant == JOINT_MODEL:
            from textinterest.models.joint import JointInterestRecommender

            return JointInterestRecommender(
                cfg, features, task=task, train_config=replace(tc, batch_size=32), encoder=encoder,
                train_layers=joint_layers, max_length=joint_max_length, name=variant,
            )
        return InterestRecommender(cfg, features if cfg.use_text else None, task=task, train_config=tc, name=variant)

    # 4a. the small grid (validation only, seed 0 of the list)
    choice = dict(TUNING_GRID[0])
    tuning: dict[str, Any] = {"grid": list(TUNING_GRID), "chosen": {}, "scores": {}}
    if tune and "interest" in models and len(val):
        t = time.perf_counter()
        for task in tasks:
            best = None
            for j, cand in enumerate(TUNING_GRID):
                _log(progress, f"tuning interest ({task}) on validation: {cand}")
                model = make_interest("interest", task, seeds[0], cand).fit(train, val)
                metric = model.train_result_.best_metric  # -RMSE or NDCG@10 on validation
                tuning["scores"][f"{task}:{j}"] = metric
                if best is None or metric > best[0]:
                    best = (metric, cand)
            tuning["chosen"][task] = best[1]
        timings["tuning_seconds"] = time.perf_counter() - t
    chosen = {task: tuning["chosen"].get(task, choice) for task in tasks}

    # 4b. every model, every seed
    runs: list[dict[str, Any]] = []
    recovery: list[dict[str, Any]] = []
    model_seconds: dict[str, float] = {}
    order: list[str] = []
    for seed in seeds:
        if "baselines" in models:
            from textinterest.baselines import run_baselines

            t = time.perf_counter()
            _log(progress, f"seed {seed}: baselines")
            for row in run_baselines(parts, ks=ks, seed=seed):
                keep = {k: v for k, v in row.items() if isinstance(v, (int, float, str))}
                keep.update(seed=seed)
                runs.append(keep)
                if row["model"] not in order:
                    order.append(row["model"])
            model_seconds["baselines"] = model_seconds.get("baselines", 0.0) + time.perf_counter() - t
        for mname in models:
            if mname == "baselines":
                continue
            row: dict[str, Any] = {"model": mname, "seed": seed}
            for task in tasks:
                if mname == "seq-lstm" and task == "rating":
                    continue
                t = time.perf_counter()
                _log(progress, f"seed {seed}: {mname} ({task})")
                if mname == "mf":
                    model = MFRecommender(task, train_config=train_config(seed, batch_size=256, lr=5e-3, patience=3, epochs=epochs or 60))
                elif mname == "seq-lstm":
                    model = SequentialRecommender(task, train_config=train_config(seed, batch_size=64, lr=3e-3, patience=3, epochs=epochs or 40))
                else:
                    model = make_interest(mname, task, seed, chosen[task])
                model.fit(train, val)
                row.update(_evaluate_model(model, parts, task, ks))
                row[f"{task}_epochs"] = int(model.train_result_.best_epoch + 1)
                elapsed = time.perf_counter() - t
                row[f"{task}_seconds"] = elapsed
                model_seconds[mname] = model_seconds.get(mname, 0.0) + elapsed
                if mname == "interest" and task == "rating":
                    row.update(_cold_rmse(model, parts))
                if mname == "interest" and "review_topic" in gt:
                    from textinterest.models.interest import measure_topic_recovery

                    figures = measure_topic_recovery(model, dataset, next_df=val)
                    recovery.append({"seed": seed, "task": task, **figures})
            runs.append(row)
            if mname not in order:
                order.append(mname)
    timings.update({f"{k}_seconds": v for k, v in model_seconds.items()})
    duplicates = held_out_text_duplicates(train, val, parts.test)
    warnings = []
    if len(parts.test) and duplicates["test_same_user_text_in_train"] > 0.01 * len(parts.test):
        warnings.append(
            f"{duplicates['test_same_user_text_in_train']} of {len(parts.test)} test rows repeat a training review "
            "of the same user word for word (e.g. one review posted for several product variants): models that "
            "read the user's history can copy the rating, so these results overstate them"
        )
        _log(progress, "warning: " + warnings[-1])
    timings["total_seconds"] = time.perf_counter() - t0

    import torch

    result = {
        "dataset": dataset.name if hasattr(dataset, "name") else name,
        "split": split,
        "n_train": int(len(train)),
        "n_val": int(len(val)),
        "n_test": int(len(parts.test)),
        "n_users": int(df[USER_COL].nunique()),
        "n_items": int(df[ITEM_COL].nunique()),
        "max_users": max_users,
        "seeds": list(seeds),
        "tasks": list(tasks),
        "results": _aggregate(runs, order),
        "runs": runs,
        "timings": timings,
        "cold_start": {**cold_start_counts(train, val, parts.test), **parts.info},
        "duplicates": duplicates,
        "warnings": warnings,
        "sentiment": sentiment_info,
        **({"topic_recovery": recovery} if recovery else {}),
        "tuning": tuning,
        "config": {"interest": asdict(interest_base), "chosen": chosen, "encoder": encoder},
        "environment": {
            "python": platform.python_version(), "torch": torch.__version__,
            "device": str(resolve_device(device)), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
    }
    if json_out is not None:
        path = Path(json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=_json_default))
        os.replace(tmp, path)
    return result


def _cold_rmse(model: Any, parts: Any) -> dict[str, float]:
    """Test RMSE of users with <= 2 training reviews and of the others."""
    from textinterest.evaluation import rmse

    test = parts.test[pd.to_numeric(parts.test[RATING_COL], errors="coerce").notna()]
    if not len(test):
        return {}
    hist = model.history_length(test[USER_COL].to_numpy())
    pred = model.predict(test)
    truth = test[RATING_COL].to_numpy(dtype=np.float64)
    out = {}
    for key, sel in (("rmse_short_history", hist <= 2), ("rmse_long_history", hist > 2)):
        if sel.any():
            out[key] = rmse(truth[sel], pred[sel])
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def format_results_table(result: dict[str, Any], metrics: Sequence[str] = ("rmse", "mae", "hr@10", "ndcg@10", "mrr")) -> str:
    """A markdown table of ``result["results"]``: ``mean ± std`` over seeds, "–" where a metric does not apply.

    Args:
        result: the dict returned by :func:`run_evaluation`.
        metrics: columns to show.
    """
    if "results" not in result:
        raise ValueError("result has no 'results' field (is it the output of run_evaluation?)")
    header = ["model"] + [m.upper() for m in metrics]
    lines = [
        f"{result.get('dataset', '?')} · {result.get('split', '?')} · seeds {result.get('seeds')} · "
        f"train/val/test {result.get('n_train')}/{result.get('n_val')}/{result.get('n_test')}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(metrics)) + "|",
    ]
    for row in result["results"]:
        cells = [str(row["model"])]
        for m in metrics:
            if m in row and row[m] is not None and np.isfinite(row[m]):
                std = row.get(f"{m}_std")
                cells.append(f"{row[m]:.4f} ± {std:.4f}" if std is not None else f"{row[m]:.4f}")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
