"""Sentiment on Amazon Musical Instruments: TF-IDF + logistic regression vs a BERT classifier.

Binary labels from the star rating (4-5 -> positive, 1-2 -> negative, 3 left out), the
per-user leave-last-out split (last review -> test, second last -> validation), macro-F1 on the
test split. Prints one JSON object on stdout (progress goes to stderr).

Usage (needs TEXTINTEREST_DATA or --data-home pointing at the shared data folder):

    textinterest benchmark sentiment --mode frozen
    textinterest benchmark sentiment --mode finetune --device cuda --epochs 3
    textinterest benchmark sentiment --mode finetune --train-last-layers 1 \
        --max-train 3000 --epochs 1 --threads 1
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.apps.cli_types import OneLineParser
from textinterest.constants import SEED, SUMMARY_COL, TEXT_COL

LOGGER = "sentiment_mi"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="textinterest benchmark sentiment", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--mode",
        choices=["frozen", "finetune", "tfidf"],
        default="frozen",
        help="BERT classifier mode (tfidf: the baseline only)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-train", type=int, default=None, help="use a stratified random subset of N training rows")
    p.add_argument("--train-last-layers", type=int, default=0, help="finetune: train only the last N encoder layers")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--model", default="default", help="'default', a model folder or a hub id")
    p.add_argument("--data-home", default=None, help="data folder (default $TEXTINTEREST_DATA)")
    p.add_argument("--split", default="leave-last-out", choices=["leave-last-out", "temporal", "random"])
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all)")
    p.add_argument("--cache-dir", default=None, help="embedding cache root (frozen mode)")
    p.add_argument(
        "--fast",
        default="auto",
        choices=["none", "auto", "onnx", "onnx-int8", "int8"],
        help="frozen mode: CPU embedding path (see textinterest.text.features)",
    )
    p.add_argument("--no-tfidf", action="store_true", help="skip the TF-IDF baseline")
    p.add_argument("--json-out", default=None, help="also write the JSON result to this file")
    return p.parse_args(argv)


def review_text(df) -> list[str]:
    """The review text, or the summary when the text is empty."""
    return [t if t.strip() else s for t, s in zip(df[TEXT_COL].tolist(), df[SUMMARY_COL].tolist(), strict=True)]


@dataclass
class _Texts:
    """Labelled review texts of the three splits (the training part possibly subsampled)."""

    x_train: list[str]
    y_train: np.ndarray
    x_val: list[str]
    y_val: np.ndarray
    x_test: list[str]
    y_test: np.ndarray
    info: dict


def _labelled_texts(args: argparse.Namespace) -> _Texts:
    """Load Musical Instruments, split it, label each split and subsample training to ``--max-train``."""
    from textinterest.datasets import load_dataset
    from textinterest.datasets.splits import split_interactions
    from textinterest.text.sentiment import sentiment_labels

    ds = load_dataset("amazon:Musical_Instruments", data_home=args.data_home)
    split = split_interactions(ds.interactions, args.split, seed=args.seed)
    parts = {}
    for name in ("train", "val", "test"):
        df = getattr(split, name)
        y = sentiment_labels(df["rating"], "binary")
        keep = y >= 0
        parts[name] = (review_text(df.loc[keep]), y[keep], int((~keep).sum()))
    x_tr, y_tr, _ = parts["train"]
    if args.max_train and args.max_train < len(x_tr):
        from sklearn.model_selection import train_test_split

        idx, _ = train_test_split(
            np.arange(len(x_tr)), train_size=args.max_train, stratify=y_tr, random_state=args.seed
        )
        idx = np.sort(idx)
        x_tr, y_tr = [x_tr[i] for i in idx], y_tr[idx]
    x_va, y_va, _ = parts["val"]
    x_te, y_te, _ = parts["test"]
    data_info = {
        name: {
            "n": len(parts[name][0]) if name != "train" else len(x_tr),
            "n_negative": int((parts[name][1] == 0).sum()) if name != "train" else int((y_tr == 0).sum()),
            "left_out_neutral_or_unrated": parts[name][2],
        }
        for name in ("train", "val", "test")
    }
    return _Texts(x_tr, y_tr, x_va, y_va, x_te, y_te, data_info)


def _machine(device: str) -> dict:
    """Torch version, CUDA device, threads, Python and CPU count for the result."""
    import torch

    return {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def _evaluate(model: Any, name: str, fit_s: float, texts: _Texts) -> dict:
    """Validation and test macro-F1 (and test accuracy, confusion, timings) of a fitted classifier."""
    from textinterest.evaluation import classification_metrics

    t0 = time.perf_counter()
    pred_val = model.predict(texts.x_val)
    pred_test = model.predict(texts.x_test)
    pred_s = time.perf_counter() - t0
    val = classification_metrics(texts.y_val, pred_val, labels=[0, 1], target_names=["negative", "positive"])
    test = classification_metrics(texts.y_test, pred_test, labels=[0, 1], target_names=["negative", "positive"])
    out = {
        "val_macro_f1": val["macro_f1"],
        "test_macro_f1": test["macro_f1"],
        "test_accuracy": test["accuracy"],
        "test_confusion": test["confusion"],
        "fit_seconds": fit_s,
        "predict_seconds": pred_s,
        "history": getattr(model, "history_", None),
    }
    logging.getLogger(LOGGER).info(
        "%s: val macro-F1 %.4f, test macro-F1 %.4f (fit %.1f s)",
        name,
        out["val_macro_f1"],
        out["test_macro_f1"],
        fit_s,
    )
    return out


def _run_tfidf(args: argparse.Namespace, texts: _Texts) -> dict:
    """Fit and evaluate the TF-IDF + logistic regression baseline."""
    from textinterest.text.sentiment import TfidfLogisticBaseline

    t0 = time.perf_counter()
    tfidf = TfidfLogisticBaseline(seed=args.seed).fit(texts.x_train, texts.y_train, texts.x_val, texts.y_val)
    out = _evaluate(tfidf, "tfidf", time.perf_counter() - t0, texts)
    out["C"] = tfidf.C_
    return out


def _run_bert(args: argparse.Namespace, texts: _Texts, machine: dict) -> dict:
    """Fit and evaluate the BERT classifier in ``--mode``; records its device in ``machine``."""
    from textinterest.text.sentiment import SentimentClassifier

    clf = SentimentClassifier(
        args.model,
        num_labels=2,
        mode=args.mode,
        max_length=args.max_length,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        train_last_layers=args.train_last_layers,
        cache_dir=args.cache_dir,
        fast=None if args.fast == "none" else args.fast,
    )
    machine["device"] = clf.device
    t0 = time.perf_counter()
    clf.fit(texts.x_train, texts.y_train, texts.x_val, texts.y_val)
    fit_s = time.perf_counter() - t0
    out = {
        "mode": args.mode,
        "train_last_layers": args.train_last_layers,
        "best_epoch": clf.best_epoch_,
        **_evaluate(clf, f"bert-{args.mode}", fit_s, texts),
    }
    if args.mode == "frozen":
        out["C"] = clf.C_
        out["fast"] = clf.extractor.fast_mode
    if args.mode == "finetune":
        out["train_samples_per_s_incl_val"] = len(texts.x_train) * len(clf.history_) / fit_s
    return out


def _import_libraries() -> None:
    """Import torch and the modules a run uses, so that ``total_seconds`` does not time their import."""
    for module in (
        "torch",
        "textinterest.datasets",
        "textinterest.datasets.splits",
        "textinterest.evaluation",
        "textinterest.text.sentiment",
    ):
        importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    """Train and evaluate the chosen classifiers; prints one JSON object."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    log = logging.getLogger(LOGGER)

    _import_libraries()
    from textinterest.text.features import configure_threads

    if args.threads:
        configure_threads(args.threads)
    started = time.perf_counter()
    texts = _labelled_texts(args)
    log.info("data: %s", texts.info)

    result: dict = {
        "dataset": "amazon:Musical_Instruments",
        "labels": "binary: rating>=4 -> 1, <=2 -> 0, 3 left out",
        "split": args.split,
        "data": texts.info,
        "args": vars(args),
        "machine": _machine(args.device),
        "command": " ".join(["textinterest benchmark sentiment", *(argv if argv is not None else sys.argv[1:])]),
    }
    if not args.no_tfidf:
        result["tfidf_logreg"] = _run_tfidf(args, texts)
    if args.mode != "tfidf":
        result["bert"] = _run_bert(args, texts, result["machine"])
    result["total_seconds"] = time.perf_counter() - started
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
