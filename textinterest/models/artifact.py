"""Whole-pipeline artifacts: save a fitted recommender to a folder and load it back without the training data.

A folder written by :func:`save_recommender` holds everything needed to score, recommend and explain:

    textinterest_artifact.json   format version, model kind and class, task, configs, fitted
                                 scalars, encoder reference (name + content hash), sentiment
                                 head reference, training metadata and metrics, file hashes
    vocab.json                   user and item ids, in the order of the model's index
    model.safetensors            the network's weights (item text vectors included: buffer ``item_text``)
    history.safetensors          training histories in (user, time) order: user / item positions,
                                 rating, timestamp, and for text models the review vectors and sentiment
    texts.json                   the training review texts (text models; shown by ``explain``)
    sentiment/                   the frozen sentiment head (:meth:`SentimentClassifier.save`), when used

JSON and safetensors only: loading executes no stored code. Each data file's sha256 is recorded,
so a truncated or edited file is reported instead of silently giving other scores. Loading checks
the format version (a newer one is refused) and that the text encoder at hand has the content hash
the model was trained with (another encoder would give review vectors the model never saw).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from textinterest.constants import ITEM_COL, ORDER_COL, RATING_COL, TIME_COL, USER_COL
from textinterest.evaluation import IdIndex
from textinterest.utils import atomic_write_text, json_default

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "ArtifactError",
    "encoder_reference",
    "load_recommender",
    "read_manifest",
    "save_recommender",
]

FORMAT_VERSION = 1
MANIFEST = "textinterest_artifact.json"
KINDS = {"interest": "InterestRecommender", "mf": "MFRecommender", "seq-lstm": "SequentialRecommender"}


class ArtifactError(ValueError):
    """A saved recommender cannot be written or read as asked (the message says what and where)."""


# --------------------------------------------------------------------------- encoder reference


def encoder_reference(encoder: Any) -> dict[str, Any]:
    """What a model needs to know about its text encoder to embed new reviews the same way.

    Args:
        encoder: a :class:`~textinterest.text.features.BertFeatureExtractor`.

    Returns:
        ``{"model", "pooling", "max_length", "fast", "identity", "content_hash"}``; ``content_hash``
        is the sha256 of the encoder's identity (the hashes of its weights, config and tokenizer files).
    """
    identity = encoder.identity
    return {
        "model": encoder.model_name if isinstance(encoder.model_name, str) else os.fspath(encoder.model_name),
        "pooling": encoder.pooling,
        "max_length": int(encoder.max_length),
        "fast": encoder.fast_mode,
        "identity": identity,
        "content_hash": _identity_hash(identity),
    }


def _identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable_ids(ids: np.ndarray) -> list[Any]:
    out = []
    for value in ids.tolist():
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ArtifactError(f"ids must be str or int to be saved, got {type(value).__name__} ({value!r})")
        out.append(value)
    return out


# --------------------------------------------------------------------------- save


def _kind_of(model: Any) -> str:
    for kind, cls_name in KINDS.items():
        if type(model).__name__ == cls_name or any(c.__name__ == cls_name for c in type(model).__mro__):
            return kind
    raise ArtifactError(f"cannot save a {type(model).__name__}; supported: {', '.join(KINDS.values())}")


def save_recommender(
    model: Any,
    directory: str | os.PathLike,
    *,
    encoder: Any = None,
    sentiment: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted recommender (and what it needs to serve new users) into ``directory``.

    Args:
        model: a fitted ``InterestRecommender``, ``MFRecommender`` or ``SequentialRecommender``.
        directory: target folder (created; existing artifact files in it are replaced).
        encoder: the :class:`~textinterest.text.features.BertFeatureExtractor` that embedded the training
            reviews (required for a text model; default: ``model.text_encoder_`` when set).
        sentiment: the fitted frozen :class:`~textinterest.text.sentiment.SentimentClassifier` whose scores
            fed the model (default: ``model.sentiment_model_`` when set); None when sentiment was off.
        metadata: JSON-able training facts (data set, split, metrics, ...), stored under ``"training"``.

    Returns:
        The folder.

    Raises:
        ArtifactError: unfitted model, a text model without its encoder, or ids that JSON cannot hold.
    """
    if getattr(model, "module", None) is None:
        raise ArtifactError(f"{type(model).__name__} is not fitted; call fit() before save()")
    kind = _kind_of(model)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = encoder if encoder is not None else getattr(model, "text_encoder_", None)
    sentiment = sentiment if sentiment is not None else getattr(model, "sentiment_model_", None)
    config = getattr(model, "config", None)
    uses_text = kind == "interest" and config.use_text
    if uses_text and encoder is None:
        raise ArtifactError("a text model needs its encoder to be saved: pass encoder=<the BertFeatureExtractor used>")
    if uses_text and sentiment is not None and sentiment.mode != "frozen":
        raise ArtifactError("only a frozen-encoder sentiment head can be saved with the model (mode='frozen')")

    # a model may choose which weights to write and add settings of its own (the joint model: only
    # the encoder weights that trained, and its fine-tuning settings under "joint")
    custom = getattr(model, "artifact_state", None)
    module_state, own_settings = custom() if callable(custom) else (model.module.state_dict(), None)
    seq = model.seq
    rows = np.asarray(seq.rows)
    train = model._train_df
    arrays: dict[str, np.ndarray] = {
        "user": np.asarray(seq.user, np.int64),
        "item": np.asarray(seq.item, np.int64),
        "rating": np.asarray(seq.rating, np.float64),
        "timestamp": train[TIME_COL].to_numpy(dtype=np.int64)[rows],
    }
    files = {"vocab.json": None, "model.safetensors": None, "history.safetensors": None}
    if uses_text:
        arrays["review"] = np.asarray(model._review, np.float32)
        arrays["sentiment"] = np.asarray(model._sentiment, np.float32)
        texts = getattr(model, "_texts", None)
        if texts is not None:
            atomic_write_text(folder / "texts.json", json.dumps(list(texts), ensure_ascii=False))
            files["texts.json"] = None
    vocab = {"users": _jsonable_ids(model.user_index.ids), "items": _jsonable_ids(model.item_index.ids)}
    atomic_write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))

    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file as save_torch

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module_state.items()}
    save_torch(state, str(folder / "model.safetensors.tmp"))
    os.replace(folder / "model.safetensors.tmp", folder / "model.safetensors")
    save_numpy({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "history.safetensors.tmp"))
    os.replace(folder / "history.safetensors.tmp", folder / "history.safetensors")
    sentiment_ref = None
    if uses_text and sentiment is not None:
        sentiment.save(folder / "sentiment")
        sentiment_ref = {"folder": "sentiment", "mode": sentiment.mode, "num_labels": sentiment.num_labels}
    for name in files:
        files[name] = _file_sha256(folder / name)

    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "name": getattr(model, "name", kind),
        "task": model.task,
        "config": dataclasses.asdict(config) if config is not None else _id_only_settings(model, kind),
        "train_config": dataclasses.asdict(model.train_config),
        "eval_batch_size": int(model.eval_batch_size),
        "global_mean": float(model.global_mean_),
        "rating_range": [float(x) for x in model.rating_range_],
        "n_users": len(model.user_index),
        "n_items": len(model.item_index),
        "n_history_rows": len(seq),
        "uses_text": bool(uses_text),
        "sentiment_input": ("classifier" if sentiment is not None else "given")
        if uses_text and model.features is not None and model.features.sentiment is not None
        else "zeros",
        "encoder": encoder_reference(encoder) if uses_text else None,
        "sentiment": sentiment_ref,
        "train_result": model.train_result_.to_dict() if model.train_result_ is not None else None,
        "training": metadata or {},
        "files": files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {
            "textinterest": _package_version(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    if own_settings is not None:
        manifest["joint"] = own_settings
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, default=json_default) + "\n")
    return folder


def _id_only_settings(model: Any, kind: str) -> dict[str, Any]:
    if kind == "mf":
        return {"dim": model.dim, "l2": model.l2, "bias_l2": model.bias_l2}
    return {"hidden": model.hidden, "dropout": model.dropout, "max_history": model.max_history}


def _package_version() -> str:
    from textinterest import __version__

    return __version__


# --------------------------------------------------------------------------- load


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a saved recommender, checked for a known format version.

    Raises:
        ArtifactError: no manifest, unreadable JSON, or a format version this package cannot read.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{path} not found: {directory} is not a saved recommender (see textinterest train --output)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{path}: 'format_version' must be an int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {version} is newer than this textinterest reads (format {FORMAT_VERSION}); "
            "upgrade textinterest to load it"
        )
    if version < 1:
        raise ArtifactError(f"{path}: unknown artifact format {version}")
    if manifest.get("kind") not in KINDS:
        raise ArtifactError(f"{path}: unknown model kind {manifest.get('kind')!r}; expected one of {sorted(KINDS)}")
    return manifest


def _check_files(folder: Path, manifest: dict[str, Any]) -> None:
    for name, digest in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"artifact file missing: {path}")
        if digest is not None and _file_sha256(path) != digest:
            raise ArtifactError(f"artifact file {path} does not match its recorded sha256 (changed or truncated)")


def _check_encoder(reference: dict[str, Any], encoder: Any) -> None:
    have = _identity_hash(encoder.identity)
    if have != reference["content_hash"]:
        raise ArtifactError(
            f"the text encoder {encoder.model_name!r} (content hash {have[:12]}) is not the one this model was "
            f"trained with ({reference['model']!r}, content hash {reference['content_hash'][:12]}); its review "
            "vectors would not mean what the model learned. Load with the original encoder folder (encoder=...)."
        )
    for key in ("pooling", "max_length"):
        if getattr(encoder, key) != reference[key]:
            raise ArtifactError(f"encoder {key}={getattr(encoder, key)!r} differs from the model's {reference[key]!r}")


def _make_encoder(reference: dict[str, Any], encoder: Any, device: str, cache_dir: Any) -> Any:
    from textinterest.text.features import BertFeatureExtractor

    if encoder is None or isinstance(encoder, (str, os.PathLike)):
        name = reference["model"] if encoder is None else encoder
        try:
            # no on-disk cache: texts sent by users are not written to disk
            encoder = BertFeatureExtractor(
                name,
                pooling=reference["pooling"],
                max_length=reference["max_length"],
                device=device,
                use_cache=False,
                cache_dir=cache_dir,
            )
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"cannot open the model's text encoder {name!r}: {exc}. Pass encoder=<folder> (CLI: --encoder)"
            ) from exc
    _check_encoder(reference, encoder)
    return encoder


def load_recommender(
    directory: str | os.PathLike,
    *,
    encoder: Any = None,
    device: str = "cpu",
    expect: type | None = None,
) -> Any:
    """Load a recommender written by :func:`save_recommender`.

    Args:
        directory: the artifact folder.
        encoder: text models: None (the encoder recorded in the artifact), a model folder / name, or a
            ready ``BertFeatureExtractor``; its content hash must match the recorded one.
        device: where the network runs ("cpu" by default).
        expect: a class the loaded model must be an instance of (used by ``Class.load``).

    Returns:
        The fitted recommender, with ``artifact_`` (the manifest), ``text_encoder_`` and
        ``sentiment_model_`` (None for ID-only models) set.

    Raises:
        ArtifactError: missing or changed files, a newer format, another encoder, or a model of another class.
    """
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import load_file as load_torch

    from textinterest.training import resolve_device

    folder = Path(directory)
    manifest = read_manifest(folder)
    _check_files(folder, manifest)
    kind = manifest["kind"]
    model = _new_model(kind, manifest)
    if expect is not None and not isinstance(model, expect):
        raise ArtifactError(f"{folder} holds a {type(model).__name__}, not a {expect.__name__}")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    arrays = load_numpy(str(folder / "history.safetensors"))
    users, items = np.asarray(vocab["users"], dtype=object), np.asarray(vocab["items"], dtype=object)
    train = pd.DataFrame(
        {
            USER_COL: users[arrays["user"]],
            ITEM_COL: items[arrays["item"]],
            RATING_COL: arrays["rating"],
            TIME_COL: arrays["timestamp"],
            ORDER_COL: np.arange(len(arrays["user"]), dtype=np.int64),
        }
    )
    text_encoder = sentiment = None
    if manifest["uses_text"]:
        from textinterest.models.interest import TextFeatures

        text_encoder = RecentVectors(_make_encoder(manifest["encoder"], encoder, device, None))
        if manifest.get("joint") is not None:
            model.encoder = text_encoder.model_name  # the joint model rebuilds its encoder from the checked one
        texts = None
        if (folder / "texts.json").is_file():
            texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
        model.features = TextFeatures(review_vectors=arrays["review"], sentiment=arrays["sentiment"], texts=texts)
        if manifest.get("sentiment"):
            sentiment = _load_sentiment(folder / manifest["sentiment"]["folder"], text_encoder, device)
    _restore_fit(model, manifest, train, IdIndex(users), IdIndex(items), resolve_device(device))
    state = load_torch(str(folder / "model.safetensors"), device=str(model.device))
    custom = getattr(model, "load_artifact_state", None)
    try:
        custom(state) if callable(custom) else model.module.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{folder / 'model.safetensors'} does not fit the saved configuration: {exc}") from exc
    model.module.eval()
    model.artifact_ = manifest
    model.text_encoder_, model.sentiment_model_ = text_encoder, sentiment
    return model


def _new_model(kind: str, manifest: dict[str, Any]) -> Any:
    from textinterest.models.cf import MFRecommender, SequentialRecommender
    from textinterest.models.interest import InterestConfig, InterestRecommender
    from textinterest.training import TrainConfig

    tc = TrainConfig(**{**manifest["train_config"], "device": "cpu", "progress": False})
    task, batch, cfg = manifest["task"], manifest["eval_batch_size"], manifest["config"]
    if kind == "interest" and manifest.get("joint") is not None:
        from textinterest.models.joint import JointInterestRecommender

        return JointInterestRecommender.from_artifact_settings(
            manifest["joint"],
            config=InterestConfig(**cfg),
            task=task,
            train_config=tc,
            eval_batch_size=batch,
            name=manifest.get("name"),
        )
    if kind == "interest":
        return InterestRecommender(
            InterestConfig(**cfg), task=task, train_config=tc, eval_batch_size=batch, name=manifest.get("name")
        )
    if kind == "mf":
        return MFRecommender(
            task, dim=cfg["dim"], l2=cfg["l2"], bias_l2=cfg["bias_l2"], train_config=tc, eval_batch_size=batch
        )
    return SequentialRecommender(
        task,
        hidden=cfg["hidden"],
        dropout=cfg["dropout"],
        max_history=cfg["max_history"],
        train_config=tc,
        eval_batch_size=batch,
    )


def _restore_fit(
    model: Any, manifest: dict[str, Any], train: pd.DataFrame, users: IdIndex, items: IdIndex, device: torch.device
) -> None:
    """Rebuild the fitted state ``fit`` leaves behind, from the saved histories (no training)."""
    from textinterest.models.cf import UserSequences

    model.user_index, model.item_index = users, items
    model.seq = UserSequences(train, users, items)
    if not np.array_equal(model.seq.rows, np.arange(len(train))):
        raise ArtifactError("history.safetensors is not in (user, time) order; the artifact is damaged")
    model.global_mean_ = float(manifest["global_mean"])
    model.rating_range_ = tuple(float(x) for x in manifest["rating_range"])
    model._train_df = train
    model.device = device
    from textinterest.models.interest import InterestConfig

    saved_cfg = InterestConfig(**manifest["config"]) if manifest["kind"] == "interest" else None
    if saved_cfg is not None:
        model.config = dataclasses.replace(saved_cfg, kmeans_init=False)  # weights come from the file
    model.module = model._build(train).to(device)
    if saved_cfg is not None:
        model.config = model.module.config = saved_cfg
    if manifest.get("train_result"):
        from textinterest.training import TrainResult

        model.train_result_ = TrainResult(**manifest["train_result"])


def _load_sentiment(folder: Path, encoder: Any, device: str) -> Any:
    from textinterest.text.sentiment import SentimentClassifier

    if not folder.is_dir():
        raise ArtifactError(f"sentiment head folder missing: {folder}")
    clf = SentimentClassifier.load(folder, device=device)
    same = clf.mode == "frozen" and clf.max_length == encoder.max_length and clf.model_name == encoder.model_name
    if same:
        clf._extractor = encoder  # one encoder in memory; the head reads the same vectors
    return clf


class RecentVectors:
    """An encoder that remembers the vectors of its most recent texts (in memory, ``size`` texts).

    The review vectors and the sentiment head read the same texts one after the other; without a
    disk cache (user texts are not written to disk) this saves the second pass through the encoder.
    Every other attribute is the wrapped encoder's.

    Args:
        encoder: a :class:`~textinterest.text.features.BertFeatureExtractor`.
        size: how many texts to remember.
    """

    def __init__(self, encoder: Any, size: int = 256) -> None:
        from collections import OrderedDict

        self.encoder, self.size = encoder, size
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["encoder"], name)

    def embed(self, texts: Any) -> np.ndarray:
        """Vectors of ``texts`` (N, D), encoding only those not seen recently."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._recent))
        if missing:
            for text, vector in zip(missing, np.asarray(self.encoder.embed(missing), np.float32)):
                self._recent[text] = vector
        for text in texts:
            self._recent.move_to_end(text)
        out = np.stack([self._recent[t] for t in texts]) if texts else np.zeros((0, self.encoder.dim), np.float32)
        while len(self._recent) > max(self.size, len(texts)):
            self._recent.popitem(last=False)
        return out
