"""Whole-pipeline artifacts: save a fitted recommender to a folder and load it back without the training data.
(Above 500 lines on purpose: the format is written and read in one place, so that each field written is checked
when it is read.)

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

JSON and safetensors only: loading executes no stored code. Loading verifies everything it reads:

- the sha256 of every file (the sentiment head's included) recorded in the manifest, and the
  manifest's own sha256 (``manifest_sha256``, over its canonical JSON without that key), so an
  edited configuration value is refused like an edited weight;
- the manifest's shape (each field's type) and the kind against the files (a text model has its
  encoder reference, review vectors and texts; an ID-only model has none of them);
- consistency: vocabulary sizes against ``n_users`` / ``n_items``, history arrays against the
  vocabulary and ``n_history_rows``, the network's tensors against the configuration, the
  sentiment head against the encoder's width;
- the format version (a newer one is refused, and format 1, which did not hash its configuration
  and sentiment head, too) and that the text encoder at hand has the content hash the model was
  trained with (another encoder would give review vectors the model never saw).

Any failure is an :class:`ArtifactError` of one line naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from textinterest.constants import ITEM_COL, ORDER_COL, RATING_COL, TIME_COL, USER_COL
from textinterest.evaluation import IdIndex
from textinterest.models.text_features import TextFeatures
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

FORMAT_VERSION = 2
MANIFEST = "textinterest_artifact.json"
# the model families this format stores (each class says its own: ``artifact_kind``)
KINDS = ("interest", "interest+joint", "mf", "seq-lstm")
TEXT_KINDS = ("interest", "interest+joint")  # kinds that may read text (their configuration says whether they do)


class ArtifactError(ValueError):
    """A saved recommender cannot be written or read as asked (one line saying what and where)."""

    def __init__(self, message: str) -> None:
        super().__init__(" | ".join(part.strip() for part in str(message).splitlines() if part.strip()))


@contextmanager
def _reading(path: Path, what: str = "cannot be read") -> Iterator[None]:
    """Turn any error while reading ``path`` into a one-line :class:`ArtifactError` naming it."""
    try:
        yield
    except ArtifactError:
        raise
    except Exception as exc:  # safetensors, json, numpy and torch each raise their own kinds
        raise ArtifactError(f"{path} {what}: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _manifest_hash(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON, without its own ``manifest_sha256``."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


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
    kind = getattr(type(model), "artifact_kind", None)
    if kind not in KINDS:
        raise ArtifactError(f"cannot save a {type(model).__name__}; the saved kinds are {', '.join(KINDS)}")
    return kind


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
    uses_text = kind in TEXT_KINDS and config.use_text
    if uses_text and encoder is None:
        raise ArtifactError("a text model needs its encoder to be saved: pass encoder=<the BertFeatureExtractor used>")
    if uses_text and sentiment is not None and sentiment.mode != "frozen":
        raise ArtifactError("only a frozen-encoder sentiment head can be saved with the model (mode='frozen')")

    # a model chooses which weights to write and may add settings of its own (the joint model: only the
    # encoder weights that trained, and its fine-tuning settings)
    module_state, own_settings = model.artifact_state()
    files, sentiment_ref = _write_files(model, module_state, folder, uses_text, sentiment)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "name": getattr(model, "name", kind),
        "task": model.task,
        "config": model.saved_settings(),
        "train_config": dataclasses.asdict(model.train_config),
        "eval_batch_size": int(model.eval_batch_size),
        "global_mean": float(model.global_mean_),
        "rating_range": [float(x) for x in model.rating_range_],
        "n_users": len(model.user_index),
        "n_items": len(model.item_index),
        "n_history_rows": len(model.seq),
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
        manifest["own_settings"] = own_settings
    manifest = json.loads(json.dumps(manifest, default=json_default))  # the values as a reader will see them
    manifest["manifest_sha256"] = _manifest_hash(manifest)
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return folder


def _write_files(
    model: Any, module_state: dict[str, torch.Tensor], folder: Path, uses_text: bool, sentiment: Any
) -> tuple[dict[str, str], dict | None]:
    """Write the vocabulary, weights, histories (texts) and sentiment head; their sha256 by file name."""
    seq = model.seq
    rows = np.asarray(seq.rows)
    train = model.training_frame
    arrays: dict[str, np.ndarray] = {
        "user": np.asarray(seq.user, np.int64),
        "item": np.asarray(seq.item, np.int64),
        "rating": np.asarray(seq.rating, np.float64),
        "timestamp": train[TIME_COL].to_numpy(dtype=np.int64)[rows],
    }
    files = {"vocab.json": None, "model.safetensors": None, "history.safetensors": None}
    if uses_text:
        review, sentiment_scores, texts = model.text_arrays()
        arrays["review"] = np.asarray(review, np.float32)
        arrays["sentiment"] = np.asarray(sentiment_scores, np.float32)
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
        files.update({name: None for name in _files_under(folder, "sentiment")})
    for name in files:
        files[name] = _file_sha256(folder / name)
    return files, sentiment_ref


def _files_under(folder: Path, sub: str) -> list[str]:
    """Every file below ``folder / sub``, as paths relative to ``folder`` (posix)."""
    return sorted(p.relative_to(folder).as_posix() for p in (folder / sub).rglob("*") if p.is_file())


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
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} must hold a JSON object, got {type(manifest).__name__}")
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
    if version < FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {version} does not hash its configuration and sentiment head; "
            f"train and save the model again (format {FORMAT_VERSION})"
        )
    recorded = manifest.get("manifest_sha256")
    if not isinstance(recorded, str) or recorded != _manifest_hash(manifest):
        raise ArtifactError(f"{path} does not match its recorded manifest_sha256 (edited after saving?)")
    if manifest.get("kind") not in KINDS:
        raise ArtifactError(f"{path}: unknown model kind {manifest.get('kind')!r}; expected one of {sorted(KINDS)}")
    _check_shape(path, manifest)
    return manifest


_NUMBER = (int, float)
_FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "class": (str,),
    "task": (str,),
    "config": (dict,),
    "train_config": (dict,),
    "eval_batch_size": (int,),
    "global_mean": _NUMBER,
    "rating_range": (list,),
    "n_users": (int,),
    "n_items": (int,),
    "n_history_rows": (int,),
    "uses_text": (bool,),
    "encoder": (dict, type(None)),
    "sentiment": (dict, type(None)),
    "train_result": (dict, type(None)),
    "files": (dict,),
}
_ENCODER_FIELDS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "pooling": (str,),
    "max_length": (int,),
    "content_hash": (str,),
}


def _check_fields(path: Path, where: str, record: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> None:
    for key, types in fields.items():
        if key not in record:
            raise ArtifactError(f"{path}: {where}{key!r} is missing")
        value = record[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ArtifactError(f"{path}: {where}{key!r} must be {wanted}, got {value!r:.60}")


def _check_shape(path: Path, manifest: dict[str, Any]) -> None:
    """Each field the loader reads has its type; the kind agrees with the files it lists."""
    _check_fields(path, "", manifest, _FIELDS)
    if manifest["task"] not in ("ranking", "rating"):
        raise ArtifactError(f"{path}: 'task' must be 'ranking' or 'rating', got {manifest['task']!r:.40}")
    low_high = manifest["rating_range"]
    if len(low_high) != 2 or not all(isinstance(x, _NUMBER) and not isinstance(x, bool) for x in low_high):
        raise ArtifactError(f"{path}: 'rating_range' must be [low, high], got {low_high!r:.60}")
    for key in ("n_users", "n_items", "n_history_rows", "eval_batch_size"):
        if manifest[key] < (1 if key != "n_history_rows" else 0):
            raise ArtifactError(f"{path}: {key!r} must be positive, got {manifest[key]}")
    files = manifest["files"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ArtifactError(f"{path}: 'files' must map file names to sha256 strings")
    kind, uses_text = manifest["kind"], manifest["uses_text"]
    needed = {"vocab.json", "model.safetensors", "history.safetensors"}
    missing = sorted(needed - set(files))
    if missing:
        raise ArtifactError(f"{path}: the {kind} model's file {missing[0]} is not among the hashed files")
    if uses_text and kind not in TEXT_KINDS:
        raise ArtifactError(f"{path}: kind {kind!r} reads no text, yet 'uses_text' is true")
    if kind in TEXT_KINDS and manifest["config"].get("use_text") is not uses_text:
        raise ArtifactError(f"{path}: 'uses_text' disagrees with the configuration's use_text")
    if uses_text:
        if manifest["encoder"] is None:
            raise ArtifactError(f"{path}: a text model needs its 'encoder' reference")
        _check_fields(path, "encoder ", manifest["encoder"], _ENCODER_FIELDS)
    else:
        extra = sorted(set(files) - needed)
        if manifest["encoder"] is not None or manifest["sentiment"] is not None or extra:
            raise ArtifactError(
                f"{path}: an ID-only {kind} model lists text files or an encoder ({', '.join(extra) or 'encoder'})"
            )
    sentiment = manifest["sentiment"]
    known = needed | ({"texts.json"} if uses_text else set())
    if sentiment is not None:
        _check_fields(path, "sentiment ", sentiment, {"folder": (str,), "mode": (str,)})
        prefix = sentiment["folder"].rstrip("/") + "/"
        if ".." in Path(sentiment["folder"]).parts or not any(name.startswith(prefix) for name in files):
            raise ArtifactError(f"{path}: the sentiment head's files are not among the hashed files")
        known |= {name for name in files if name.startswith(prefix)}
    elif uses_text and manifest.get("sentiment_input") == "classifier":
        raise ArtifactError(f"{path}: the model reads sentiment from a classifier, but no sentiment head is given")
    unused = sorted(set(files) - known)
    if unused:
        raise ArtifactError(f"{path}: lists {unused[0]}, a file this {kind} model does not use")


def _check_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Every listed file exists and has its sha256; no file the loader reads is left unlisted."""
    files = manifest["files"]
    for name, digest in files.items():
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArtifactError(f"{folder / MANIFEST}: file name {name!r} points outside the folder")
        if not path.is_file():
            raise ArtifactError(f"artifact file missing: {path}")
        if _file_sha256(path) != digest:
            raise ArtifactError(f"artifact file {path} does not match its recorded sha256 (changed or truncated)")
    read = ["texts.json"] if (folder / "texts.json").is_file() and manifest["uses_text"] else []
    if manifest["sentiment"] is not None:
        read += _files_under(folder, manifest["sentiment"]["folder"])
    unlisted = [name for name in read if name not in files]
    if unlisted:
        raise ArtifactError(f"artifact file {folder / unlisted[0]} is not covered by the manifest's hashes")


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
    model_class: type,
    *,
    encoder: Any = None,
    device: str = "cpu",
) -> Any:
    """Load a recommender written by :func:`save_recommender` into a model of ``model_class``.

    The class comes from the caller: ``MFRecommender.load(folder)`` passes its own, and
    :func:`textinterest.models.registry.load_recommender` picks it by the saved kind.

    Args:
        directory: the artifact folder.
        model_class: the class of the saved model (its ``artifact_kind`` must be the saved kind).
        encoder: text models: None (the encoder recorded in the artifact), a model folder / name, or a
            ready ``BertFeatureExtractor``; its content hash must match the recorded one.
        device: where the network runs ("cpu" by default).

    Returns:
        The fitted recommender, with ``artifact_`` (the manifest), ``text_encoder_`` and
        ``sentiment_model_`` (None for ID-only models) set.

    Raises:
        ArtifactError: missing or changed files, a newer format, another encoder, or a model of another kind.
    """
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import load_file as load_torch

    from textinterest.training import TrainConfig, TrainResult, resolve_device

    folder = Path(directory)
    manifest = read_manifest(folder)
    _check_files(folder, manifest)
    if getattr(model_class, "artifact_kind", None) != manifest["kind"]:
        raise ArtifactError(f"{folder} holds a saved {manifest['kind']!r} model, not a {model_class.__name__}")
    with _reading(folder / MANIFEST, "holds a configuration the model does not accept"):
        model = model_class.from_saved(
            manifest["config"],
            task=manifest["task"],
            train_config=TrainConfig(**{**manifest["train_config"], "device": "cpu", "progress": False}),
            eval_batch_size=manifest["eval_batch_size"],
            name=manifest.get("name"),
            own_settings=manifest.get("own_settings"),
        )
    with _reading(folder / "vocab.json"):
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    users, items = _check_vocab(folder / "vocab.json", vocab, manifest)
    with _reading(folder / "history.safetensors"):
        arrays = load_numpy(str(folder / "history.safetensors"))
    _check_history(folder / "history.safetensors", arrays, manifest)
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
        text_encoder = RecentVectors(_make_encoder(manifest["encoder"], encoder, device, None))
        model.use_text_encoder(text_encoder)  # the joint model rebuilds its encoder from the checked one
        texts = None
        if (folder / "texts.json").is_file():
            with _reading(folder / "texts.json"):
                texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
            if not isinstance(texts, list) or len(texts) != manifest["n_history_rows"]:
                raise ArtifactError(f"{folder / 'texts.json'} must list one text per history row")
        model.features = TextFeatures(review_vectors=arrays["review"], sentiment=arrays["sentiment"], texts=texts)
        if manifest.get("sentiment"):
            sentiment = _load_sentiment(folder / manifest["sentiment"]["folder"], text_encoder, device)
    with _reading(folder / "history.safetensors", "does not rebuild the model"):
        model.restore_fitted(
            train,
            IdIndex(users),
            IdIndex(items),
            global_mean=manifest["global_mean"],
            rating_range=tuple(manifest["rating_range"]),
            device=resolve_device(device),
            train_result=TrainResult(**manifest["train_result"]) if manifest.get("train_result") else None,
        )
    with _reading(folder / "model.safetensors"):
        state = load_torch(str(folder / "model.safetensors"), device=str(model.device))
    with _reading(folder / "model.safetensors", "does not fit the saved configuration"):
        model.load_artifact_state(state)
    model.module.eval()
    model.artifact_ = manifest
    model.text_encoder_, model.sentiment_model_ = text_encoder, sentiment
    return model


def _check_vocab(path: Path, vocab: Any, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The user and item ids, checked against the manifest's counts (unique str or int ids)."""
    if not (isinstance(vocab, dict) and isinstance(vocab.get("users"), list) and isinstance(vocab.get("items"), list)):
        raise ArtifactError(f"{path} must hold {{'users': [...], 'items': [...]}}")
    out = []
    for key, count in (("users", "n_users"), ("items", "n_items")):
        ids = vocab[key]
        if len(ids) != manifest[count]:
            raise ArtifactError(f"{path} lists {len(ids)} {key}; the manifest's {count} is {manifest[count]}")
        if not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids) or len(set(ids)) != len(ids):
            raise ArtifactError(f"{path}: the {key} must be distinct strings or integers")
        out.append(np.asarray(ids, dtype=object))
    return out[0], out[1]


def _check_history(path: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """The history arrays agree with each other, the vocabulary and the kind of model."""
    names = {"user", "item", "rating", "timestamp"} | ({"review", "sentiment"} if manifest["uses_text"] else set())
    if set(arrays) != names:
        raise ArtifactError(f"{path} holds arrays {sorted(arrays)}; a {manifest['kind']} model needs {sorted(names)}")
    n = manifest["n_history_rows"]
    for name, array in arrays.items():
        if array.shape[:1] != (n,) or array.ndim != (2 if name == "review" else 1):
            raise ArtifactError(f"{path}: array {name!r} has shape {array.shape}; expected {n} rows")
    for name, count in (("user", "n_users"), ("item", "n_items")):
        values = arrays[name]
        if values.dtype.kind not in "iu" or (n and (values.min() < 0 or values.max() >= manifest[count])):
            raise ArtifactError(f"{path}: array {name!r} holds positions outside 0..{count}-1")
    text_dim = manifest["config"].get("text_dim")
    if manifest["uses_text"] and arrays["review"].shape[1] != text_dim:
        raise ArtifactError(f"{path}: review vectors are {arrays['review'].shape[1]}-d; the model reads {text_dim}-d")


def _load_sentiment(folder: Path, encoder: Any, device: str) -> Any:
    from textinterest.text.sentiment import SentimentClassifier

    if not folder.is_dir():
        raise ArtifactError(f"sentiment head folder missing: {folder}")
    with _reading(folder, "does not hold a sentiment head this package can load"):
        clf = SentimentClassifier.load(folder, device=device)
    if clf.mode != "frozen" or clf.head_input_dim != encoder.dim:
        raise ArtifactError(f"{folder}: the sentiment head does not read the encoder's {encoder.dim}-d vectors")
    same = clf.mode == "frozen" and clf.max_length == encoder.max_length and clf.model_name == encoder.model_name
    if same:
        clf.share_extractor(encoder)  # one encoder in memory; the head reads the same vectors
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
