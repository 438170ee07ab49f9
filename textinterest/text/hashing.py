"""A cheap baseline text encoder: hashed word n-grams projected to a few hundred dimensions.

``HashingEncoder`` needs no model files and no GPU, so it serves scale runs (a million reviews on a
laptop CPU) and students without a GPU. It is a *baseline*: it sees which words and word pairs a
review uses, not what they mean (no synonyms, no context), so it is expected to rank below a BERT
encoder on real reviews (see benchmarks/RESULTS.md, "At scale").

How a text becomes a vector:

1. scikit-learn's ``HashingVectorizer`` counts word unigrams and bigrams into ``n_features`` buckets
   (lower-cased, no vocabulary to fit, so every run and machine agrees); counts become ``log(1 + c)``
   and each row is scaled to unit length;
2. a fixed sparse random projection (seeded; every bucket adds ``±1/sqrt(s)`` to ``s`` of the
   ``dim`` output coordinates) maps the buckets to ``dim`` dimensions, approximately keeping dot
   products (Johnson-Lindenstrauss);
3. rows are scaled to unit length again; an empty text gives the zero vector.

The encoder has the interface of :class:`~textinterest.text.features.BertFeatureExtractor` that the
pipeline uses (``embed(texts) -> float32 (n, dim)``, ``dim``, ``cache_key()``, ``identity``) and writes
to the same on-disk :class:`~textinterest.text.features.EmbeddingCache` root, under its own key.

Names: "hashing" (256 dimensions) or "hashing:D" (e.g. "hashing:384"), accepted wherever an encoder
name is (``run_evaluation(encoder=...)``, ``textinterest evaluate --encoder``, the frozen sentiment
classifier, ``textinterest embed``); see :func:`make_extractor`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textinterest.constants import SEED

HASHING_PREFIX = "hashing"
DEFAULT_DIM = 256
FORMAT_VERSION = 1


def is_hashing(encoder: Any) -> bool:
    """True for "hashing" and "hashing:D" encoder names."""
    return isinstance(encoder, str) and (encoder == HASHING_PREFIX or encoder.startswith(HASHING_PREFIX + ":"))


def parse_hashing(encoder: str) -> int:
    """Output dimension of a "hashing" / "hashing:D" name.

    Raises:
        ValueError: the name is not "hashing" or "hashing:D" with a positive integer D.
    """
    if not is_hashing(encoder):
        raise ValueError(f"{encoder!r} is not a hashing encoder name ('hashing' or 'hashing:D')")
    _, _, dim = encoder.partition(":")
    if not dim:
        return DEFAULT_DIM
    if not dim.isdigit() or int(dim) < 1:
        raise ValueError(f"hashing encoder dimension must be a positive integer, got {encoder!r}")
    return int(dim)


class HashingEncoder:
    """Hashed word n-grams and a seeded sparse random projection (see the module docstring).

    Args:
        dim: output dimension.
        n_features: hash buckets of the n-gram counts.
        ngram_range: word n-gram lengths (min, max).
        nonzeros: output coordinates each bucket adds to (``s`` in the module docstring).
        seed: seed of the projection; the same arguments give the same vectors on every machine.
        cache_dir: embedding cache root (default :func:`~textinterest.text.features.default_cache_dir`).
        use_cache: read and write the on-disk cache.
        chunk_size: texts vectorised at a time (bounds the sparse count matrix in memory).
    """

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        *,
        n_features: int = 2**20,
        ngram_range: tuple[int, int] = (1, 2),
        nonzeros: int = 4,
        seed: int = SEED,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        chunk_size: int = 50_000,
    ) -> None:
        if int(dim) < 1 or int(n_features) < 2 or int(nonzeros) < 1 or int(chunk_size) < 1:
            raise ValueError(
                f"need dim, nonzeros, chunk_size >= 1 and n_features >= 2, got dim={dim}, "
                f"n_features={n_features}, nonzeros={nonzeros}, chunk_size={chunk_size}"
            )
        lo, hi = (int(v) for v in ngram_range)
        if not 1 <= lo <= hi:
            raise ValueError(f"ngram_range must be (min, max) with 1 <= min <= max, got {ngram_range}")
        self.dim = int(dim)
        self.n_features = int(n_features)
        self.ngram_range = (lo, hi)
        self.nonzeros = int(nonzeros)
        self.seed = int(seed)
        self.use_cache = bool(use_cache)
        self.chunk_size = int(chunk_size)
        if cache_dir is None:
            from textinterest.text.features import default_cache_dir

            cache_dir = default_cache_dir()
        self.cache_root = Path(cache_dir)
        self.stats = {"texts": 0, "unique": 0, "cache_hits": 0, "encoded": 0}
        self._projection: Any = None
        self._vectorizer: Any = None
        self._cache: Any = None

    @property
    def model_name(self) -> str:
        """The encoder name this object answers to ("hashing:D")."""
        return f"{HASHING_PREFIX}:{self.dim}"

    @property
    def identity(self) -> dict:
        """Everything that determines the vectors (the cache key is derived from it)."""
        return {
            "encoder": HASHING_PREFIX,
            "dim": self.dim,
            "n_features": self.n_features,
            "ngram_range": list(self.ngram_range),
            "nonzeros": self.nonzeros,
            "seed": self.seed,
            "format": FORMAT_VERSION,
        }

    def cache_key(self) -> str:
        """Hex key of this encoder's cache folder."""
        return hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def cache(self) -> Any:
        """The :class:`~textinterest.text.features.EmbeddingCache` in use (None when ``use_cache`` is False)."""
        if not self.use_cache:
            return None
        if self._cache is None:
            from textinterest.text.features import EmbeddingCache

            self._cache = EmbeddingCache(
                self.cache_root / self.cache_key(), self.dim, {"model": self.model_name, "identity": self.identity}
            )
        return self._cache

    def _parts(self) -> tuple[Any, Any]:
        if self._vectorizer is None:
            import scipy.sparse as sp
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                n_features=self.n_features,
                ngram_range=self.ngram_range,
                alternate_sign=False,
                norm=None,
                dtype=np.float32,
            )
            rng = np.random.default_rng(self.seed)
            cols = rng.integers(0, self.dim, (self.n_features, self.nonzeros), dtype=np.int32).ravel()
            signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=cols.size) / np.sqrt(self.nonzeros)
            indptr = np.arange(0, cols.size + 1, self.nonzeros, dtype=np.int64)
            proj = sp.csr_matrix((signs.astype(np.float32), cols, indptr), shape=(self.n_features, self.dim))
            proj.sum_duplicates()
            self._projection = proj
        return self._vectorizer, self._projection

    def encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts`` computed directly (no cache, no de-duplication): float32 (n, dim)."""
        vectorizer, proj = self._parts()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.chunk_size):
            counts = vectorizer.transform(texts[start : start + self.chunk_size])
            np.log1p(counts.data, out=counts.data)
            norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1), dtype=np.float32)).ravel()
            counts = counts.multiply(1.0 / np.maximum(norms, 1e-12)[:, None]).tocsr()
            block = np.asarray((counts @ proj).todense(), dtype=np.float32)
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            out[start : start + len(block)] = block
        self.stats["encoded"] += len(texts)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts (identical texts once; cached vectors read back, new ones written).

        Args:
            texts: sequence of ``str`` ("" gives the zero vector).

        Returns:
            float32 array (len(texts), dim), row i for texts[i].

        Raises:
            TypeError: when ``texts`` is not a sequence of strings.
        """
        from textinterest.text.features import text_key, validate_texts

        items = validate_texts(texts)
        self.stats["texts"] += len(items)
        unique: dict[str, int] = {}
        inverse = np.fromiter((unique.setdefault(t, len(unique)) for t in items), dtype=np.int64, count=len(items))
        distinct = list(unique)
        del unique
        self.stats["unique"] += len(distinct)
        cache = self.cache
        if cache is None:
            return self.encode(distinct)[inverse]
        keys = [text_key(t) for t in distinct]
        found, cached = cache.lookup(keys)
        self.stats["cache_hits"] += int(found.sum())
        vectors = np.empty((len(distinct), self.dim), dtype=np.float32)
        vectors[found] = cached
        missing = np.flatnonzero(~found)
        if missing.size:
            fresh = self.encode([distinct[i] for i in missing])
            vectors[missing] = fresh
            try:
                cache.add([keys[i] for i in missing], fresh)
            except OSError as exc:
                import warnings

                warnings.warn(
                    f"embedding cache: could not write to {cache.directory}: {exc}", RuntimeWarning, stacklevel=2
                )
        return vectors[inverse]

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim}, n_features={self.n_features}, ngram_range={self.ngram_range})"


def make_extractor(encoder: str = "default", **options: Any) -> Any:
    """The text encoder for a name: a :class:`HashingEncoder` for "hashing[:D]", else a BERT extractor.

    Args:
        encoder: "hashing", "hashing:D", "default" (packaged MiniLM), a Hugging Face id or a local folder.
        **options: passed on; for the hashing encoder only ``cache_dir`` and ``use_cache`` are used
            (device, batch size and the like do not apply to it).
    """
    if is_hashing(encoder):
        keep = {k: v for k, v in options.items() if k in ("cache_dir", "use_cache")}
        return HashingEncoder(parse_hashing(encoder), **keep)
    from textinterest.text.features import BertFeatureExtractor

    return BertFeatureExtractor(encoder, **options)
