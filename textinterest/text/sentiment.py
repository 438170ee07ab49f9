"""Review sentiment: labels from ratings, a BERT classifier and a TF-IDF baseline.
(Above 500 lines on purpose: three classifiers sharing one fit/predict/save interface.)

* :func:`sentiment_labels` maps star ratings to class labels (``-1`` = left out).
* :class:`SentimentClassifier` either fine-tunes a Hugging Face encoder
  (``mode="finetune"``: AdamW, linear warm-up and decay, class-weighted cross-entropy, early
  stopping on validation macro-F1 with the best weights restored, AMP on CUDA) or, cheaply on
  a CPU, trains a logistic-regression head on cached frozen embeddings (``mode="frozen"``).
* :class:`TfidfLogisticBaseline` is the classic baseline (word 1-2 gram TF-IDF + logistic
  regression) with the same interface.

All three take labels ``0..num_labels-1``; rows labelled ``-1`` must be filtered out by the
caller. Saved models are a folder of JSON config and safetensors arrays (no pickle).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.constants import SEED
from textinterest.text.features import BertFeatureExtractor, configure_threads, quiet_transformers, validate_texts
from textinterest.text.hashing import is_hashing, make_extractor

logger = logging.getLogger(__name__)

SCHEMES = ("binary", "ternary")
CONFIG_FILE = "textinterest_sentiment.json"
FEATURE_CHUNK = 100_000  # texts embedded at a time by the frozen mode (bounds the encoder's copies)


#: how the recommender's per-review sentiment s_j is made (``SENTIMENT_MODE`` in the notebooks, ``evaluate
#: --sentiment``): "frozen", a logistic head on the frozen encoder's cached vectors (seconds once embedded);
#: "finetuned", the encoder's top two layers fine-tuned with a classification head (minutes on a CPU, as in
#: notebook 01). Each entry is the :class:`SentimentClassifier` arguments of that mode.
SENTIMENT_MODES: dict[str, dict[str, Any]] = {
    "frozen": {"mode": "frozen"},
    "finetuned": {"mode": "finetune", "train_last_layers": 2, "epochs": 2, "patience": 1, "batch_size": 32, "lr": 5e-5},
}


# --------------------------------------------------------------------------------------------
# Labels and metrics
# --------------------------------------------------------------------------------------------


def sentiment_labels(
    ratings: Any,
    scheme: str = "binary",
    positive_min: float = 4,
    negative_max: float = 2,
) -> np.ndarray:
    """Class labels from star ratings.

    Args:
        ratings: ratings (list, array or Series); NaN means unrated.
        scheme: "binary": rating >= ``positive_min`` -> 1, <= ``negative_max`` -> 0, in between
            -> -1 (left out). "ternary": <= ``negative_max`` -> 0, in between -> 1,
            >= ``positive_min`` -> 2.
        positive_min: lowest positive rating.
        negative_max: highest negative rating.

    Returns:
        int64 array; -1 marks rows to leave out (NaN ratings always, neutral ones in "binary").

    Raises:
        ValueError: unknown scheme, ``negative_max >= positive_min``, or non-numeric ratings.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not negative_max < positive_min:
        raise ValueError(f"negative_max ({negative_max}) must be below positive_min ({positive_min})")
    try:
        r = np.asarray(ratings, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ratings must be numbers (NaN for unrated): {exc}") from exc
    out = np.full(r.shape, -1, dtype=np.int64)
    pos = r >= positive_min
    neg = r <= negative_max
    if scheme == "binary":
        out[pos] = 1
        out[neg] = 0
    else:
        out[neg] = 0
        out[pos] = 2
        out[~pos & ~neg & ~np.isnan(r)] = 1
    return out


def macro_f1(y_true: Any, y_pred: Any, num_labels: int) -> float:
    """Macro-averaged F1 over the labels ``0..num_labels-1``."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=list(range(num_labels)), average="macro", zero_division=0))


def _check_labels(labels: Any, n: int, num_labels: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be 1-D with one label per text ({n}), got shape {y.shape}")
    if y.dtype.kind == "f":
        if np.isnan(y).any() or (y != np.round(y)).any():
            raise ValueError(
                f"{name} must be whole numbers; found NaN or fractions "
                f"(first at {int(np.argmax(np.isnan(y) | (y != np.round(y))))})"
            )
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{name} must be integers 0..{num_labels - 1}, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if (y == -1).any():
        raise ValueError(
            f"{name} contain -1 at {int((y == -1).sum())} rows (first: {int(np.argmax(y == -1))}): "
            "these are left-out rows from sentiment_labels; filter them out before fitting"
        )
    bad = (y < 0) | (y >= num_labels)
    if bad.any():
        raise ValueError(f"{name}[{int(np.argmax(bad))}] = {int(y[bad][0])} is outside 0..{num_labels - 1}")
    return y


def _balanced_weights(y: np.ndarray, num_labels: int) -> np.ndarray:
    counts = np.bincount(y, minlength=num_labels).astype(np.float64)
    if (counts == 0).any():
        missing = np.nonzero(counts == 0)[0].tolist()
        raise ValueError(f"class(es) {missing} have no training examples; balanced class weights need every class")
    return len(y) / (num_labels * counts)


def _linear_proba(x: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Class probabilities of a (binary or multinomial) logistic regression."""
    z = np.asarray(x @ coef.T, dtype=np.float64) + intercept
    if coef.shape[0] == 1:  # binary: sigmoid of the one decision function
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _score_from_proba(proba: np.ndarray) -> np.ndarray:
    """p(positive) - p(negative): column -1 minus column 0, in [-1, 1]."""
    return (proba[:, -1] - proba[:, 0]).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Logistic-regression head shared by the frozen mode and the TF-IDF baseline
# --------------------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    from textinterest.training import set_seed  # imports torch: only when a model is fitted

    set_seed(seed)


def _device_name(device: str) -> str:
    from textinterest.training import resolve_device

    return str(resolve_device(device))


def _fit_logistic(x: Any, y: np.ndarray, c: float, seed: int, max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter, random_state=seed)
    clf.fit(x, y)
    return clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)


def _select_logistic(
    x: Any,
    y: np.ndarray,
    x_val: Any,
    y_val: np.ndarray | None,
    grid: Sequence[float],
    default_c: float,
    num_labels: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, float, list[dict]]:
    """Fit with C from ``grid`` chosen on validation macro-F1 (or ``default_c`` without val)."""
    history: list[dict] = []
    if y_val is None:
        coef, intercept = _fit_logistic(x, y, default_c, seed)
        history.append({"C": default_c, "val_macro_f1": None})
        return coef, intercept, default_c, history
    best = None
    for c in grid:
        coef, intercept = _fit_logistic(x, y, c, seed)
        pred = _linear_proba(x_val, coef, intercept).argmax(axis=1)
        f1 = macro_f1(y_val, pred, num_labels)
        history.append({"C": c, "val_macro_f1": f1})
        if best is None or f1 > best[0]:
            best = (f1, coef, intercept, c)
    assert best is not None
    return best[1], best[2], best[3], history


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


# --------------------------------------------------------------------------------------------
# BERT classifier
# --------------------------------------------------------------------------------------------


def _read_saved_config(folder: Path, class_name: str) -> dict[str, Any]:
    """The config a ``save`` wrote to ``folder``, checked to belong to ``class_name``."""
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: not a saved {class_name} folder")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("class") != class_name:
        raise ValueError(f"{cfg_path} holds a {cfg.get('class')!r}, not a {class_name}")
    return cfg


class SentimentClassifier:
    """Sentiment classifier on a BERT encoder: fine-tuned, or a frozen encoder with a linear head.

    Args:
        model: "default" (packaged all-MiniLM-L6-v2), a local folder or a hub id.
        num_labels: number of classes (2 for "binary" labels, 3 for "ternary").
        mode: "finetune" (train the encoder and a classification head) or "frozen" (embed
            with :class:`BertFeatureExtractor`, cached, and fit a balanced logistic regression;
            minutes on a CPU).
        max_length: token limit per text.
        lr: AdamW learning rate (finetune).
        epochs: maximum epochs (finetune).
        batch_size: training batch size (finetune); prediction uses 2x this.
        warmup_ratio: share of steps with linear warm-up, then linear decay to 0 (finetune).
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        class_weights: "balanced" (weights n / (k * count_c) in the cross-entropy, or the
            logistic regression's ``class_weight``) or None.
        patience: stop after this many epochs in a row without a better validation macro-F1
            (finetune, only with validation data; 0 counts as 1); the best epoch's weights
            are restored.
        seed: seed for torch, numpy and Python's ``random``.
        device: "auto", "cpu" or "cuda[:n]".
        amp: mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling);
            ignored on CPU.
        train_last_layers: finetune only: 0 trains the whole encoder; N > 0 freezes the
            embeddings and all but the last N encoder layers (cheaper on a CPU).
        cache_dir: embedding cache root for the frozen mode.
        fast: fast embedding path for the frozen mode (see :mod:`textinterest.text.features`).
        grid: C values tried for the frozen head when validation data is given.

    Attributes:
        history_: per-epoch dicts (finetune: ``epoch``, ``train_loss``, ``val_macro_f1``,
            ``seconds``; frozen: one dict per C tried).
        best_epoch_: epoch whose weights were kept (finetune with validation data).
    """

    def __init__(
        self,
        model: str = "default",
        num_labels: int = 2,
        mode: str = "finetune",
        max_length: int = 128,
        lr: float = 2e-5,
        epochs: int = 3,
        batch_size: int = 16,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        class_weights: str | None = "balanced",
        patience: int = 1,
        seed: int = SEED,
        device: str = "auto",
        amp: bool = True,
        train_last_layers: int = 0,
        cache_dir: str | Path | None = None,
        fast: str | None = "auto",
        grid: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
    ) -> None:
        if mode not in ("finetune", "frozen"):
            raise ValueError(f"mode must be 'finetune' or 'frozen', got {mode!r}")
        if mode == "finetune" and is_hashing(model):
            raise ValueError(f"the {model!r} encoder has no weights to fine-tune; use mode='frozen'")
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        if class_weights not in ("balanced", None):
            raise ValueError(f"class_weights must be 'balanced' or None, got {class_weights!r}")
        if mode == "frozen" and train_last_layers:
            raise ValueError("train_last_layers applies to mode='finetune' (use mode='finetune', train_last_layers=N)")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if epochs < 1 or batch_size < 1 or patience < 0 or train_last_layers < 0:
            raise ValueError("epochs and batch_size must be >= 1, patience and train_last_layers >= 0")
        self.model_name = model
        self.num_labels = num_labels
        self.mode = mode
        self.max_length = max_length
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.class_weights = class_weights
        self.patience = patience
        self.seed = seed
        self.device = _device_name(device)
        self.amp = amp
        self.train_last_layers = train_last_layers
        self.cache_dir = cache_dir
        self.fast = fast
        self.grid = tuple(float(c) for c in grid)
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._extractor: BertFeatureExtractor | None = None
        self._coef: np.ndarray | None = None
        self._intercept: np.ndarray | None = None
        self._source: str | None = None  # folder to load the fine-tuned model from (after load())

    @property
    def head_input_dim(self) -> int | None:
        """Width of the vectors the fitted frozen-mode head reads; None before fitting or in finetune mode."""
        return None if self._coef is None else int(np.shape(self._coef)[-1])

    def share_extractor(self, extractor: Any) -> None:
        """Read texts through ``extractor`` (an encoder already in memory with the same model and length).

        Raises:
            ValueError: the head is not frozen, or ``extractor`` has another model or max_length.
        """
        if self.mode != "frozen":
            raise ValueError("only a frozen-mode head reads vectors from a shared encoder")
        if extractor.model_name != self.model_name or extractor.max_length != self.max_length:
            raise ValueError(
                f"the shared encoder ({extractor.model_name!r}, max_length={extractor.max_length}) is not this head's "
                f"({self.model_name!r}, max_length={self.max_length})"
            )
        self._extractor = extractor

    # -- helpers ---------------------------------------------------------------------------
    @property
    def extractor(self) -> BertFeatureExtractor:
        """Frozen-mode encoder (mean pooling, cached)."""
        if self._extractor is None and is_hashing(self.model_name):
            self._extractor = make_extractor(self.model_name, cache_dir=self.cache_dir)
        if self._extractor is None:
            self._extractor = BertFeatureExtractor(
                self.model_name,
                pooling="mean",
                max_length=self.max_length,
                batch_size=32,
                device=self.device,
                cache_dir=self.cache_dir,
                fast=self.fast if self.device == "cpu" else None,
            )
        return self._extractor

    def _features(self, texts: list[str], chunk: int = FEATURE_CHUNK) -> np.ndarray:
        """Unit-length float32 encoder vectors, embedded ``chunk`` texts at a time into one array.

        The encoder's own copies (de-duplication, cache reads) then stay the size of a chunk; a float64
        copy would double the memory at scale for no gain.
        """
        out = np.empty((len(texts), int(self.extractor.dim)), dtype=np.float32)
        for start in range(0, len(texts), chunk):
            x = np.asarray(self.extractor.embed(texts[start : start + chunk]), dtype=np.float32)
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            out[start : start + len(x)] = x
        return out

    def _load_finetune_model(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from textinterest.text.features import _resolve_model

        source = self._source
        revision = None
        if source is None:
            source, revision, _ = _resolve_model(self.model_name)
        if self.device == "cpu":
            configure_threads()
        tok = AutoTokenizer.from_pretrained(source, revision=revision)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        tok.padding_side = "right"
        _seed(self.seed)  # the new head's initial weights
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                source, revision=revision, num_labels=self.num_labels
            )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        self._tokenizer = tok
        self._model = model.float().to(self.device)  # fp32 master weights; AMP casts on the fly

    def _freeze_lower_layers(self) -> None:
        from textinterest.text.features import freeze_all_but_last_layers

        if self.train_last_layers:
            freeze_all_but_last_layers(self._model, self.train_last_layers, train_pooler=True)

    def _tokenize(self, texts: list[str]) -> dict:
        return self._tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)

    def _batch(self, enc: dict, idx: Sequence[int]) -> dict:
        import torch

        from textinterest.text.features import _pad_right

        keep = ["input_ids", "attention_mask"]
        if "token_type_ids" in enc:
            keep.append("token_type_ids")
        arrays = _pad_right(enc, np.asarray(idx), keep, self._tokenizer.pad_token_id)
        return {k: torch.as_tensor(v, device=self.device) for k, v in arrays.items()}

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.amp and self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def _train_batches(self, lengths: np.ndarray, epoch: int) -> list[np.ndarray]:
        """Shuffled batches of similar length: shuffle, sort within chunks of 50 batches, shuffle batches."""
        rng = np.random.default_rng(self.seed + epoch)
        order = rng.permutation(len(lengths))
        chunk = self.batch_size * 50
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        rng.shuffle(batches)
        return batches

    # -- fit -------------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Any,
        val_texts: Sequence[str] | None = None,
        val_labels: Any = None,
    ) -> SentimentClassifier:
        """Train on texts and labels ``0..num_labels-1`` (no ``-1``: filter those out first).

        Args:
            texts: training texts.
            labels: one int label per text.
            val_texts: validation texts (early stopping in finetune mode, C choice in frozen).
            val_labels: validation labels.

        Returns:
            self.

        Raises:
            TypeError: non-string texts.
            ValueError: bad labels (``-1``, out of range, wrong length) or a class without
                examples when ``class_weights="balanced"``.
        """
        x = validate_texts(texts)
        y = _check_labels(labels, len(x), self.num_labels)
        if (val_texts is None) != (val_labels is None):
            raise ValueError("give both val_texts and val_labels, or neither")
        xv = yv = None
        if val_texts is not None:
            xv = validate_texts(val_texts, "val_texts")
            yv = _check_labels(val_labels, len(xv), self.num_labels, "val_labels")
        if not x:
            raise ValueError("no training texts")
        weights = _balanced_weights(y, self.num_labels) if self.class_weights == "balanced" else None
        self.history_ = []
        _seed(self.seed)
        if self.mode == "frozen":
            t0 = time.perf_counter()
            feats = self._features(x)
            fv = self._features(xv) if xv is not None else None
            self._coef, self._intercept, self.C_, self.history_ = _select_logistic(
                feats, y, fv, yv, self.grid, 1.0, self.num_labels, self.seed
            )
            self.fit_seconds_ = time.perf_counter() - t0
            return self
        self._fit_finetune(x, y, xv, yv, weights)
        return self

    def _fit_finetune(
        self, x: list[str], y: np.ndarray, xv: list[str] | None, yv: np.ndarray | None, weights: np.ndarray | None
    ) -> None:
        """Fine-tune through :class:`textinterest.training.Trainer` (AdamW without decay on biases and
        norms, linear warm-up and decay per step, clipping at 1.0, early stopping on validation macro-F1)."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        from textinterest.training import TrainConfig, Trainer

        if self._model is None:
            self._load_finetune_model()
        model = self._model
        for p in model.parameters():
            p.requires_grad_(True)
        self._freeze_lower_layers()
        enc = self._tokenize(x)
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(x))
        total = math.ceil(len(x) / self.batch_size) * self.epochs
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias") else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        loss_fn = torch.nn.CrossEntropyLoss(
            weight=torch.as_tensor(weights, dtype=torch.float32, device=self.device) if weights is not None else None
        )
        y_t = torch.as_tensor(y, device=self.device)

        def batches(epoch: int, rng: np.random.Generator) -> Any:
            # length-bucketed shuffle seeded by seed + epoch (epochs count from 1 here, from 0 in the trainer)
            for idx in self._train_batches(lengths, epoch + 1):
                yield {**self._batch(enc, idx), "labels": y_t[torch.as_tensor(idx, device=self.device)]}

        def loss(module: Any, batch: dict) -> Any:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            return loss_fn(module(**inputs).logits.float(), batch["labels"])

        validate = None
        if xv is not None and yv is not None:

            def validate(module: Any) -> float:
                return macro_f1(yv, self.predict(xv), self.num_labels)

        config = TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            patience=max(self.patience, 1),
            seed=self.seed,
            device=self.device,
            amp=self.amp,
            grad_clip=1.0,
            progress=False,
            min_delta=0.0,
        )
        result = Trainer(config).fit(
            model,
            batches,
            loss,
            validate,
            maximize=True,
            param_groups=groups,
            scheduler=lambda opt: get_linear_schedule_with_warmup(opt, int(round(self.warmup_ratio * total)), total),
            batch_weight=lambda batch: len(batch["labels"]),
            reseed=False,  # seeded before the classification head was initialised; dropout continues from there
        )
        self.history_ = [
            {
                "epoch": int(r["epoch"]) + 1,
                "train_loss": r["loss"],
                **({"val_macro_f1": r["val"]} if "val" in r else {}),
                "seconds": r["seconds"],
            }
            for r in result.history
        ]
        for record in self.history_:
            logger.info("epoch %d: %s", record["epoch"], record)
        self.best_epoch_ = result.best_epoch + 1 if validate is not None else None
        model.eval()

    # -- predict ---------------------------------------------------------------------------
    def check_fitted(self) -> None:
        fitted = self._coef is not None if self.mode == "frozen" else self._model is not None
        if not fitted:
            raise RuntimeError("this SentimentClassifier is not fitted yet: call fit() or load() first")

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), num_labels), rows summing to 1."""
        self.check_fitted()
        x = validate_texts(texts)
        if not x:
            return np.zeros((0, self.num_labels))
        if self.mode == "frozen":
            assert self._coef is not None and self._intercept is not None
            out = np.empty((len(x), max(self._coef.shape[0], 2)), dtype=np.float64)
            for start in range(0, len(x), FEATURE_CHUNK):  # the vectors of one chunk at a time
                part = x[start : start + FEATURE_CHUNK]
                out[start : start + len(part)] = _linear_proba(self._features(part), self._coef, self._intercept)
            return out
        import torch

        model = self._model
        model.eval()
        enc = self._tokenize(x)
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(x))
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(x), self.num_labels), dtype=np.float64)
        bs = self.batch_size * 2
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                idx = order[start : start + bs]
                with self._autocast():
                    logits = model(**self._batch(enc, idx)).logits
                out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Most likely class per text (int64)."""
        return self.predict_proba(texts).argmax(axis=1).astype(np.int64)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Sentiment score in [-1, 1]: p(most positive class) - p(most negative class)."""
        return _score_from_proba(self.predict_proba(texts))

    # -- persistence -----------------------------------------------------------------------
    def _config(self) -> dict:
        return {
            "class": "SentimentClassifier",
            "model": self.model_name if isinstance(self.model_name, str) else os.fspath(self.model_name),
            "num_labels": self.num_labels,
            "mode": self.mode,
            "max_length": self.max_length,
            "lr": self.lr,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "warmup_ratio": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "class_weights": self.class_weights,
            "patience": self.patience,
            "seed": self.seed,
            "amp": self.amp,
            "train_last_layers": self.train_last_layers,
            "fast": self.fast,
            "grid": list(self.grid),
            "history": self.history_,
            "best_epoch": self.best_epoch_,
        }

    def save(self, path: str | Path) -> Path:
        """Save to a folder: ``textinterest_sentiment.json`` plus safetensors weights.

        Finetune mode writes the model and tokenizer with ``save_pretrained`` into
        ``path/model``; frozen mode writes the head to ``head.safetensors`` and records the
        encoder's identity (the encoder itself is not copied).

        Returns:
            The folder.
        """
        self.check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = self._config()
        if self.mode == "frozen":
            assert self._coef is not None and self._intercept is not None
            _save_arrays(folder / "head.safetensors", {"coef": self._coef, "intercept": self._intercept})
            config["encoder_identity"] = self.extractor.identity
            config["C"] = getattr(self, "C_", None)
        else:
            self._model.save_pretrained(folder / "model")
            self._tokenizer.save_pretrained(folder / "model")
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1, default=float) + "\n")
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", cache_dir: str | Path | None = None) -> SentimentClassifier:
        """Load a classifier saved with :meth:`save`.

        Args:
            path: the folder.
            device: where to run it.
            cache_dir: embedding cache root (frozen mode).

        Returns:
            The classifier, ready to predict.
        """
        folder = Path(path)
        cfg = _read_saved_config(folder, "SentimentClassifier")
        keys = (
            "model",
            "num_labels",
            "mode",
            "max_length",
            "lr",
            "epochs",
            "batch_size",
            "warmup_ratio",
            "weight_decay",
            "class_weights",
            "patience",
            "seed",
            "amp",
            "train_last_layers",
            "fast",
            "grid",
        )
        obj = cls(**{k: cfg[k] for k in keys}, device=device, cache_dir=cache_dir)
        obj.history_ = cfg.get("history", [])
        obj.best_epoch_ = cfg.get("best_epoch")
        if obj.mode == "frozen":
            arrays = _load_arrays(folder / "head.safetensors")
            obj._coef, obj._intercept = arrays["coef"], arrays["intercept"]
            obj.C_ = cfg.get("C")
            if cfg.get("encoder_identity") and obj.extractor.identity != cfg["encoder_identity"]:
                import warnings

                warnings.warn(
                    f"the encoder {obj.model_name!r} differs from the one the head was trained on; "
                    "predictions may be off",
                    RuntimeWarning,
                    stacklevel=2,
                )
        else:
            obj._source = str(folder / "model")
            obj._load_finetune_model()
            obj._model.eval()
        return obj

    def __repr__(self) -> str:
        return (
            f"SentimentClassifier(model={self.model_name!r}, mode={self.mode!r}, "
            f"num_labels={self.num_labels}, device={self.device!r})"
        )


# --------------------------------------------------------------------------------------------
# TF-IDF baseline
# --------------------------------------------------------------------------------------------


def sentiment_classifier(sentiment_mode: str, model: str = "default", **options: Any) -> SentimentClassifier:
    """An unfitted :class:`SentimentClassifier` of one of :data:`SENTIMENT_MODES`.

    Args:
        sentiment_mode: "frozen" or "finetuned".
        model: the encoder ("default", a local folder or a hub id).
        **options: further :class:`SentimentClassifier` arguments (``max_length``, ``seed``, ``device``...);
            they override the mode's own.

    Raises:
        ValueError: an unknown mode.
    """
    if sentiment_mode not in SENTIMENT_MODES:
        raise ValueError(f"sentiment mode must be one of {sorted(SENTIMENT_MODES)}, got {sentiment_mode!r}")
    return SentimentClassifier(model, **{**SENTIMENT_MODES[sentiment_mode], **options})


class TfidfLogisticBaseline:
    """Word 1-2 gram TF-IDF (sublinear tf, min_df=2) + balanced logistic regression.

    Args:
        num_labels: number of classes.
        ngram_range: word n-gram range.
        min_df: minimum document frequency of a term.
        max_features: vocabulary cap (None = no cap).
        grid: C values tried when validation data is given (else ``C=1``).
        seed: random state of the solver.

    Attributes:
        history_: one dict per C tried with its validation macro-F1.
        C_: the C kept.
    """

    def __init__(
        self,
        num_labels: int = 2,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 2,
        max_features: int | None = None,
        grid: Sequence[float] = (0.25, 1.0, 4.0, 16.0),
        seed: int = SEED,
    ) -> None:
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        self.num_labels = num_labels
        self.ngram_range = tuple(ngram_range)
        self.min_df = min_df
        self.max_features = max_features
        self.grid = tuple(float(c) for c in grid)
        self.seed = seed
        self.history_: list[dict] = []
        self._vectorizer: Any = None
        self._coef: np.ndarray | None = None
        self._intercept: np.ndarray | None = None

    def _new_vectorizer(self, vocabulary: dict | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            ngram_range=self.ngram_range,
            min_df=self.min_df,
            sublinear_tf=True,
            max_features=self.max_features,
            vocabulary=vocabulary,
            dtype=np.float64,
        )

    def fit(
        self, texts: Sequence[str], labels: Any, val_texts: Sequence[str] | None = None, val_labels: Any = None
    ) -> TfidfLogisticBaseline:
        """Fit the vectorizer and the classifier (C chosen on validation macro-F1 when given).

        Returns:
            self.
        """
        x = validate_texts(texts)
        y = _check_labels(labels, len(x), self.num_labels)
        if (val_texts is None) != (val_labels is None):
            raise ValueError("give both val_texts and val_labels, or neither")
        _balanced_weights(y, self.num_labels)  # every class present
        vec = self._new_vectorizer()
        try:
            feats = vec.fit_transform(x)
        except ValueError as exc:
            raise ValueError(f"TF-IDF found no usable terms (min_df={self.min_df}): {exc}") from exc
        fv = yv = None
        if val_texts is not None:
            xv = validate_texts(val_texts, "val_texts")
            yv = _check_labels(val_labels, len(xv), self.num_labels, "val_labels")
            fv = vec.transform(xv)
        self._coef, self._intercept, self.C_, self.history_ = _select_logistic(
            feats, y, fv, yv, self.grid, 1.0, self.num_labels, self.seed
        )
        self._vectorizer = vec
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), num_labels)."""
        if self._vectorizer is None or self._coef is None or self._intercept is None:
            raise RuntimeError("this TfidfLogisticBaseline is not fitted yet: call fit() or load() first")
        x = validate_texts(texts)
        if not x:
            return np.zeros((0, self.num_labels))
        return _linear_proba(self._vectorizer.transform(x), self._coef, self._intercept)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Most likely class per text (int64)."""
        return self.predict_proba(texts).argmax(axis=1).astype(np.int64)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Sentiment score in [-1, 1]: p(most positive class) - p(most negative class)."""
        return _score_from_proba(self.predict_proba(texts))

    def save(self, path: str | Path) -> Path:
        """Save to a folder: JSON config + vocabulary, safetensors idf and coefficients."""
        if self._vectorizer is None or self._coef is None or self._intercept is None:
            raise RuntimeError("nothing to save: fit() first")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {term: int(i) for term, i in self._vectorizer.vocabulary_.items()}
        cfg = {
            "class": "TfidfLogisticBaseline",
            "num_labels": self.num_labels,
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "max_features": self.max_features,
            "grid": list(self.grid),
            "seed": self.seed,
            "C": self.C_,
            "history": self.history_,
            "vocabulary": vocab,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(cfg) + "\n")
        _save_arrays(
            folder / "weights.safetensors",
            {
                "idf": self._vectorizer.idf_,
                "coef": self._coef,
                "intercept": self._intercept,
            },
        )
        return folder

    @classmethod
    def load(cls, path: str | Path) -> TfidfLogisticBaseline:
        """Load a baseline saved with :meth:`save`."""
        folder = Path(path)
        cfg = _read_saved_config(folder, "TfidfLogisticBaseline")
        obj = cls(
            num_labels=cfg["num_labels"],
            ngram_range=tuple(cfg["ngram_range"]),
            min_df=cfg["min_df"],
            max_features=cfg["max_features"],
            grid=cfg["grid"],
            seed=cfg["seed"],
        )
        arrays = _load_arrays(folder / "weights.safetensors")
        vec = obj._new_vectorizer(vocabulary=cfg["vocabulary"])
        vec.idf_ = arrays["idf"]
        obj._vectorizer = vec
        obj._coef, obj._intercept = arrays["coef"], arrays["intercept"]
        obj.C_, obj.history_ = cfg["C"], cfg["history"]
        return obj


__all__ = [
    "SentimentClassifier",
    "TfidfLogisticBaseline",
    "macro_f1",
    "sentiment_labels",
]
