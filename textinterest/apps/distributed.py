"""Embedding a whole data set ahead of time, in this process or on a Ray cluster (``textinterest embed``).

Both engines fill the on-disk embedding cache that :class:`~textinterest.text.features.BertFeatureExtractor`
and :class:`~textinterest.text.hashing.HashingEncoder` read, so a later ``textinterest evaluate`` (or any
``extractor.embed``) finds every review already embedded.

- ``engine="local"``: ``extractor.embed(texts)`` in this process.
- ``engine="ray"``: Ray Data (optional extra ``scale``: ``pip install 'textinterest[scale]'``). The
  texts not yet in the cache become a Ray dataset; ``map_batches`` runs them through a pool of
  actors, each holding one copy of the encoder (one actor per GPU with ``num_gpus=1``, or N CPU
  actors); the driver receives the vectors and writes them into the cache with the same atomic shard
  writer as the single-process path, so no two processes write one cache folder. The actors build the
  encoder with the driver's settings, so the cache key and the vectors are those of the
  single-process path.

Ray decides placement, retries and back-pressure; nothing here schedules work by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("local", "ray")


def dataset_texts(name: str, data_home: str | Path | None = None) -> list[str]:
    """Every review text of a data set (body, or summary when the body is blank) and its item texts."""
    from textinterest.constants import ITEM_TEXT_COL
    from textinterest.datasets import load_dataset
    from textinterest.protocol.experiments import review_texts

    data = load_dataset(name, data_home=data_home)
    texts = review_texts(data.interactions)
    if data.items is not None and ITEM_TEXT_COL in data.items.columns:
        item_texts = data.items[ITEM_TEXT_COL].dropna().astype(str)
        texts += [t for t in item_texts.tolist() if t.strip()]
    return texts


class _EmbedActor:
    """A Ray Data actor: one encoder per actor, built once, called on batches of texts."""

    def __init__(self, encoder: str, options: dict[str, Any]) -> None:
        from textinterest.text.hashing import make_extractor

        self.extractor = make_extractor(encoder, **{**options, "use_cache": False})

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        return {"row": batch["row"], "vec": self.extractor.embed(texts)}


def _ray_embed(
    texts: list[str],
    encoder: str,
    options: dict[str, Any],
    *,
    address: str | None,
    num_actors: int,
    num_gpus: float,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed ``texts`` on Ray; returns (row positions, vectors) in the order the batches came back."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("engine='ray' needs Ray Data: pip install 'textinterest[scale]' (or 'ray[data]')") from exc
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.from_items(
            [{"row": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=max(num_actors * 2, 1)
        )
        out = ds.map_batches(
            _EmbedActor,
            fn_constructor_args=(encoder, options),
            batch_size=batch_size,
            concurrency=num_actors,
            num_gpus=num_gpus or None,
            batch_format="numpy",
        )
        rows, vecs = [], []
        for batch in out.iter_batches(batch_size=4096, batch_format="numpy"):
            rows.append(np.asarray(batch["row"], dtype=np.int64))
            vecs.append(np.asarray(batch["vec"], dtype=np.float32))
    finally:
        if started:
            ray.shutdown()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(rows), np.concatenate(vecs)


def embed_to_cache(
    texts: Sequence[str],
    encoder: str = "default",
    *,
    engine: str = "local",
    address: str | None = None,
    num_actors: int = 2,
    num_gpus: float = 0.0,
    batch_size: int = 256,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Embed every text not yet in the cache, with one process or a Ray cluster, and store the vectors.

    Args:
        texts: the texts (duplicates are embedded once).
        encoder: "hashing[:D]", "default" (packaged MiniLM), a Hugging Face id or a local folder.
        engine: "local" or "ray".
        address: Ray cluster address ("auto" for a running cluster, "ray://host:10001" for a remote
            one); None starts a local Ray instance for this call.
        num_actors: Ray actors, each with its own copy of the encoder.
        num_gpus: GPUs per actor (1 = an actor per GPU; 0 = CPU actors).
        batch_size: texts per actor call.
        device: device of the encoder in the actors and in the local engine ("cpu", "cuda", "auto").
        cache_dir: embedding cache root (default: the package's cache folder).

    Returns:
        ``{"engine", "encoder", "cache_dir", "n_texts", "n_unique", "n_cached_before", "n_embedded", "seconds"}``.
    """
    from textinterest.text.features import text_key, validate_texts
    from textinterest.text.hashing import is_hashing, make_extractor

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if num_actors < 1 or batch_size < 1 or num_gpus < 0:
        raise ValueError(
            f"need num_actors >= 1, batch_size >= 1 and num_gpus >= 0, got {num_actors}, {batch_size}, {num_gpus}"
        )
    items = validate_texts(texts)
    distinct = list(dict.fromkeys(items))
    options: dict[str, Any] = {"cache_dir": cache_dir}
    if not is_hashing(encoder):
        options.update(device=device, progress=False)
    extractor = make_extractor(encoder, **options)
    cache = extractor.cache
    if cache is None:  # pragma: no cover - make_extractor always caches here
        raise RuntimeError("the encoder has no cache to fill")
    start = time.perf_counter()
    keys = [text_key(t) for t in distinct]
    found, _ = cache.lookup(keys)
    missing = np.flatnonzero(~found)
    if engine == "local" or not missing.size:
        if missing.size:
            extractor.embed([distinct[i] for i in missing])
    else:
        todo = [distinct[i] for i in missing]
        rows, vectors = _ray_embed(
            todo, encoder, options, address=address, num_actors=num_actors, num_gpus=num_gpus, batch_size=batch_size
        )
        if sorted(rows.tolist()) != list(range(len(todo))):
            raise RuntimeError(f"Ray returned {len(rows)} vectors for {len(todo)} texts")
        for lo in range(0, len(rows), 100_000):
            part = rows[lo : lo + 100_000]
            cache.add([keys[missing[i]] for i in part], vectors[lo : lo + 100_000])
    return {
        "engine": engine,
        "encoder": encoder,
        "cache_dir": str(cache.directory),
        "n_texts": len(items),
        "n_unique": len(distinct),
        "n_cached_before": int(found.sum()),
        "n_embedded": int(missing.size),
        "seconds": time.perf_counter() - start,
    }


def cmd_embed(args: argparse.Namespace) -> int:
    """``textinterest embed NAME``: embed a data set's texts into the cache."""
    texts = dataset_texts(args.name, args.data_home)
    result = embed_to_cache(
        texts,
        args.encoder,
        engine=args.engine,
        address=args.address,
        num_actors=args.num_actors,
        num_gpus=args.num_gpus,
        batch_size=args.batch_size,
        device=args.device,
    )
    result["dataset"] = args.name
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"{args.name}: {result['n_embedded']:,} texts embedded with {args.engine} "
            f"({result['n_cached_before']:,} of {result['n_unique']:,} distinct texts were cached) "
            f"in {result['seconds']:.1f} s -> {result['cache_dir']}"
        )
    return 0


def add_parser(commands: Any) -> None:
    """Register ``textinterest embed`` on the top-level sub-command parsers."""
    embed = commands.add_parser("embed", help="embed a data set's reviews into the cache (one process or Ray)")
    embed.add_argument("name", help="data set name, e.g. amazon:Musical_Instruments, synthetic:50000x2000")
    embed.add_argument("--data-home", default=None, help="data folder (default: $TEXTINTEREST_DATA)")
    embed.add_argument(
        "--encoder", default="default", help="hashing, hashing:D, 'default' (MiniLM), a hub id or folder"
    )
    embed.add_argument("--engine", choices=ENGINES, default="local")
    embed.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    embed.add_argument("--num-actors", type=int, default=2, help="Ray actors (each holds one encoder)")
    embed.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor (1: one actor per GPU)")
    embed.add_argument("--batch-size", type=int, default=256, help="texts per actor call")
    embed.add_argument("--device", default="cpu", help="encoder device: cpu, cuda or auto")
    embed.add_argument("--json", action="store_true")
    embed.set_defaults(handler=cmd_embed)
