"""Tests for textinterest.text.features (tiny random BERT models built in tmp folders; no network)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_models import build_tiny_model  # noqa: E402

from textinterest.text import features  # noqa: E402
from textinterest.text.features import (  # noqa: E402
    BertFeatureExtractor,
    EmbeddingCache,
    default_model_path,
    item_text_vectors,
    model_identity,
    text_key,
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_model_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert-b"), seed=1)


TEXTS = [
    "the guitar sounds great",
    "terrible cable, it broke",
    "",
    "i love this pedal and the tone is very nice",
    "ok",
    "cheap strings but they work fine for the price and i would buy them again",
]


def make(model: Path, tmp_path: Path, **kw) -> BertFeatureExtractor:
    kw.setdefault("cache_dir", tmp_path / "cache")
    kw.setdefault("device", "cpu")
    return BertFeatureExtractor(str(model), **kw)


def count_forward_rows(extractor: BertFeatureExtractor) -> list[int]:
    rows: list[int] = []
    extractor.model.register_forward_hook(
        lambda mod, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    return rows


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


# ------------------------------------------------------------------------------------------


def test_shapes_dtype_and_dim(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path, use_cache=False)
    out = ex.embed(TEXTS)
    assert ex.dim == 32
    assert out.shape == (len(TEXTS), 32)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    assert ex.embed([]).shape == (0, 32)


def test_mean_and_cls_pooling_differ(tiny_model, tmp_path):
    mean = make(tiny_model, tmp_path, pooling="mean", use_cache=False).embed(TEXTS)
    cls = make(tiny_model, tmp_path, pooling="cls", use_cache=False).embed(TEXTS)
    last = make(tiny_model, tmp_path, pooling="last", use_cache=False).embed(TEXTS)
    assert not np.allclose(mean, cls, atol=1e-3)
    assert not np.allclose(cls, last, atol=1e-3)


def test_mean_pooling_matches_manual_computation(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path, use_cache=False)
    got = ex.embed(["the guitar sounds great"])[0]
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_model))
    model = transformers.AutoModel.from_pretrained(str(tiny_model)).eval()
    enc = tok(["the guitar sounds great"], return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_duplicates_embedded_once(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path, use_cache=False)
    rows = count_forward_rows(ex)
    texts = ["good", "bad", "good", "good", "bad", "fine"]
    out = ex.embed(texts)
    assert sum(rows) == 3
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[3])
    np.testing.assert_array_equal(out[1], out[4])
    assert not np.allclose(out[0], out[1])


def test_rows_follow_input_order(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path, use_cache=False, batch_size=2)
    out = ex.embed(TEXTS)
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    out_perm = ex.embed([TEXTS[i] for i in perm])
    np.testing.assert_allclose(out_perm, out[perm], atol=1e-5)
    for i, t in enumerate(TEXTS):
        np.testing.assert_allclose(ex.embed([t])[0], out[i], atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_padding_invariance(tiny_model, tmp_path, pooling):
    ex = make(tiny_model, tmp_path, use_cache=False, pooling=pooling, batch_size=8)
    alone = ex.embed(["ok"])[0]
    long_texts = ["the guitar sounds great and the amp is loud " * 4, "i love this pedal " * 5]
    together = ex.embed([*long_texts, "ok"])[2]
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_decoder_last_token_padding_invariance(tmp_path):
    folder = build_tiny_model(tmp_path / "tiny-gpt2", decoder=True)
    ex = BertFeatureExtractor(str(folder), pooling="last", device="cpu", use_cache=False)
    alone = ex.embed(["good strings"])[0]
    batch = ex.embed(["the guitar sounds great and the amp is loud and nice", "good strings"])
    np.testing.assert_allclose(alone, batch[1], atol=1e-5)
    assert ex.dim == 32


def test_truncation_at_max_length(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path, use_cache=False, max_length=8)
    base = "the guitar sounds great and"
    a, b = ex.embed([base + " it broke", base + " i love this pedal"])
    # both are cut to the same first 6 word tokens + [CLS]/[SEP]
    np.testing.assert_allclose(a, b, atol=1e-6)
    full = make(tiny_model, tmp_path, use_cache=False, max_length=64).embed(
        [base + " it broke", base + " i love this pedal"]
    )
    assert not np.allclose(full[0], full[1], atol=1e-4)


def test_cache_hit_needs_no_model(tiny_model, tmp_path):
    first = make(tiny_model, tmp_path)
    out1 = first.embed(TEXTS)
    assert first.stats["encoded"] == len(TEXTS)
    second = make(tiny_model, tmp_path)
    out2 = second.embed(TEXTS[::-1])
    assert second.stats["encoded"] == 0
    assert second.stats["cache_hits"] == len(TEXTS)
    assert second._model is None  # the encoder was never loaded
    np.testing.assert_array_equal(out2, out1[::-1])
    # a partly new request encodes only the new text
    third = make(tiny_model, tmp_path)
    rows = count_forward_rows(third)
    third.embed([*TEXTS, "a brand new review"])
    assert sum(rows) == 1


def test_chunked_encoding_matches_and_fills_cache(tiny_model, tmp_path):
    ref = make(tiny_model, tmp_path, use_cache=False).embed(TEXTS)
    ex = make(tiny_model, tmp_path)
    ex.CHUNK = 2  # tokenize/sort in chunks of two texts
    np.testing.assert_allclose(ex.embed(TEXTS), ref, atol=1e-5)
    again = make(tiny_model, tmp_path)
    np.testing.assert_allclose(again.embed(TEXTS), ref, atol=1e-5)
    assert again.stats["encoded"] == 0


def test_cache_key_depends_on_settings_and_model(tiny_model, tiny_model_b, tmp_path):
    keys = {
        make(tiny_model, tmp_path).cache_key(),
        make(tiny_model, tmp_path, pooling="cls").cache_key(),
        make(tiny_model, tmp_path, max_length=32).cache_key(),
        make(tiny_model_b, tmp_path).cache_key(),
        make(tiny_model, tmp_path, fast="int8").cache_key(),
    }
    assert len(keys) == 5
    assert make(tiny_model, tmp_path, batch_size=3).cache_key() == make(tiny_model, tmp_path).cache_key()
    a = make(tiny_model, tmp_path).embed(["good"])
    b = make(tiny_model_b, tmp_path).embed(["good"])
    assert not np.allclose(a, b)


def test_model_identity_tracks_weight_bytes(tmp_path):
    folder = build_tiny_model(tmp_path / "m")
    root = tmp_path / "cache"
    ident1 = model_identity(str(folder), cache_root=root)
    assert (root / "file_hashes.json").is_file()
    assert model_identity(str(folder), cache_root=root) == ident1
    build_tiny_model(folder, seed=5)  # new weights, same path
    assert model_identity(str(folder), cache_root=root) != ident1


def test_killed_write_leaves_readable_cache(tiny_model, tmp_path, monkeypatch):
    ex = make(tiny_model, tmp_path)
    before = ex.embed(TEXTS[:3])
    cache_dir = ex.cache.directory

    class Killed(BaseException):
        pass

    def crash(src, dst):
        raise Killed()

    monkeypatch.setattr(features.os, "replace", crash)
    with pytest.raises(Killed):
        make(tiny_model, tmp_path).embed(TEXTS[3:])
    monkeypatch.undo()
    # debris a hard kill could leave: a half-written temp file
    (cache_dir / ".tmp-deadbeef.npy").write_bytes(b"\x93NUMPY garbage")
    fresh = make(tiny_model, tmp_path)
    out = fresh.embed(TEXTS)
    assert fresh.stats["cache_hits"] == 3
    assert fresh.stats["encoded"] == len(TEXTS) - 3
    np.testing.assert_array_equal(out[:3], before)
    assert not [p for p in cache_dir.glob("shard-*") if p.stat().st_size == 0]


def _old_format_shard(path: Path, dim: int) -> None:
    arr = np.zeros(2, dtype=[("key", "S32"), ("vec", "<f4", (dim,))])
    arr["key"] = [text_key(t) for t in TEXTS[:2]]
    np.save(path, arr)


def _damage(shard: Path, how: str, dim: int) -> None:
    data = shard.read_bytes()
    if how == "flipped-vector-bytes":  # the last bytes of the file are vector data
        shard.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    elif how == "zero-bytes":
        shard.write_bytes(b"")
    elif how == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif how == "bad-header":
        shard.write_bytes(b"XXXXXXXX" + data[8:])
    elif how == "old-npy-format":
        shard.unlink()
        _old_format_shard(shard, dim)


@pytest.mark.parametrize("how", ["flipped-vector-bytes", "zero-bytes", "truncated", "bad-header", "old-npy-format"])
def test_bad_shard_is_reported_deleted_and_reencoded(tiny_model, tmp_path, how):
    ref = make(tiny_model, tmp_path, use_cache=False).embed(TEXTS)
    first = make(tiny_model, tmp_path)
    first.embed(TEXTS)
    shards = list(first.cache.directory.glob("shard-*"))
    assert len(shards) == 1
    _damage(shards[0], how, first.dim)
    fresh = make(tiny_model, tmp_path)
    with pytest.warns(RuntimeWarning, match=rf"bad shard .*{shards[0].name}"):
        out = fresh.embed(TEXTS)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert fresh.stats["cache_hits"] == 0 and fresh.stats["encoded"] == len(TEXTS)
    assert not shards[0].exists()
    # the re-encoded vectors are stored again: the next run is all hits and says nothing
    again = make(tiny_model, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(again.embed(TEXTS), ref, atol=1e-5)
    assert again.stats["cache_hits"] == len(TEXTS)


def test_good_shards_survive_a_bad_neighbour(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path)
    ex.embed(TEXTS[:3])
    (ex.cache.directory / "shard-0000broken.bin").write_bytes(b"not a shard")
    fresh = make(tiny_model, tmp_path)
    with pytest.warns(RuntimeWarning, match="bad shard"):
        fresh.embed(TEXTS[:3])
    assert fresh.stats["cache_hits"] == 3


def test_weights_edited_in_place_with_mtime_restored_miss_the_cache(tmp_path):
    folder = build_tiny_model(tmp_path / "m")
    first = make(folder, tmp_path)
    before = first.embed(TEXTS)
    key = first.cache_key()
    weights = next(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    st = weights.stat()
    time.sleep(0.01)  # so the ctime of the edit differs
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # encoder weights: same size, other values
    with open(weights, "r+b") as fh:
        fh.write(data)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    second = make(folder, tmp_path)
    assert second.cache_key() != key
    after = second.embed(TEXTS)
    assert second.stats["cache_hits"] == 0 and second.stats["encoded"] == len(TEXTS)
    assert not np.allclose(after, before)


def test_file_hash_index_records_file_identity(tmp_path):
    import json

    folder = build_tiny_model(tmp_path / "m")
    root = tmp_path / "cache"
    model_identity(str(folder), cache_root=root)
    entries = json.loads((root / "file_hashes.json").read_text())
    entry = next(v for k, v in entries.items() if k.endswith(".json"))
    assert {"size", "mtime_ns", "inode", "ctime_ns", "sha256"} <= set(entry)


def test_embedding_cache_roundtrip_and_compact(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", dim=4)
    keys = [text_key(f"t{i}") for i in range(10)]
    vecs = np.arange(40, dtype=np.float32).reshape(10, 4)
    for i in range(0, 10, 2):
        cache.add(keys[i : i + 2], vecs[i : i + 2])
    assert len(list((tmp_path / "c").glob("shard-*"))) == 5
    cache.compact()
    assert len(list((tmp_path / "c").glob("shard-*"))) == 1
    again = EmbeddingCache(tmp_path / "c", dim=4)
    found, got = again.lookup([keys[3], text_key("missing"), keys[0]])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(got, vecs[[3, 0]])
    with pytest.raises(ValueError, match="shape"):
        again.add(keys[:2], np.zeros((3, 4)))


def test_key_with_trailing_nul_bytes(tmp_path):
    cache = EmbeddingCache(tmp_path / "c", dim=2)
    key = b"\x01" * 30 + b"\x00\x00"
    cache.add([key], np.ones((1, 2)))
    found, vec = EmbeddingCache(tmp_path / "c", dim=2).lookup([key])
    assert found.all() and vec.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize(
    "bad, match",
    [
        (["ok", None], r"texts\[1\] is None"),
        (["ok", float("nan")], r"texts\[1\].*fill missing"),
        ([3], r"texts\[0\]"),
        ("just one string", "single str"),
        (42, "sequence of strings"),
    ],
)
def test_bad_inputs(tiny_model, tmp_path, bad, match):
    ex = make(tiny_model, tmp_path, use_cache=False)
    with pytest.raises(TypeError, match=match):
        ex.embed(bad)


def test_empty_string_is_embedded(tiny_model, tmp_path):
    ex = make(tiny_model, tmp_path, use_cache=False)
    out = ex.embed(["", "good", ""])
    assert np.isfinite(out).all() and np.linalg.norm(out[0]) > 0
    np.testing.assert_array_equal(out[0], out[2])


def test_bad_settings(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="pooling"):
        make(tiny_model, tmp_path, pooling="max")
    with pytest.raises(ValueError, match="max_length"):
        make(tiny_model, tmp_path, max_length=0)
    with pytest.raises(ValueError, match="fast"):
        make(tiny_model, tmp_path, fast="fp8")
    with pytest.raises(FileNotFoundError):
        BertFeatureExtractor(str(tmp_path / "no-such-model"), device="cpu")


def test_int8_fast_path_close_to_fp32(tiny_model, tmp_path):
    ref = make(tiny_model, tmp_path, use_cache=False).embed(TEXTS)
    q = make(tiny_model, tmp_path, use_cache=False, fast="int8")
    assert q.fast_mode == "int8"
    out = q.embed(TEXTS)
    assert cosine(out, ref).mean() > 0.9


def test_onnx_fast_paths(tiny_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    ref = make(tiny_model, tmp_path, use_cache=False).embed(TEXTS)
    ex = make(tiny_model, tmp_path, fast="onnx")
    out = ex.embed(TEXTS)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert list((tmp_path / "cache" / "onnx").rglob("model.onnx"))
    auto = make(tiny_model, tmp_path, fast="auto")
    assert auto.fast_mode == "onnx"
    q = make(tiny_model, tmp_path, fast="onnx-int8").embed(TEXTS)
    assert cosine(q, ref).mean() > 0.9
    # padding invariance holds for the ONNX graph too
    alone = make(tiny_model, tmp_path, fast="onnx", use_cache=False).embed(["ok"])[0]
    np.testing.assert_allclose(alone, out[4], atol=1e-5)


def test_cache_dir_from_environment(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path / "envcache"))
    ex = BertFeatureExtractor(str(tiny_model), device="cpu")
    ex.embed(["good"])
    assert ex.cache_root == tmp_path / "envcache" / "embeddings"
    assert list((tmp_path / "envcache" / "embeddings").rglob("shard-*"))


def test_progress_bar_respects_tqdm_disable(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    make(tiny_model, tmp_path, use_cache=False, progress=True).embed(TEXTS)
    assert "embedding" not in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "0")
    make(tiny_model, tmp_path, use_cache=False, progress=True).embed(TEXTS)
    assert "embedding" in capsys.readouterr().err


def test_item_text_vectors_means_and_metadata(tiny_model, tmp_path):
    train = pd.DataFrame({"item_id": ["i1", "i2", "i1", "i3"], "text": ["a", "b", "c", "d"]})
    vecs = np.array([[1, 0], [0, 1], [3, 0], [5, 5]], dtype=np.float32)
    ids, out = item_text_vectors(train, vecs)
    assert ids.tolist() == ["i1", "i2", "i3"]
    np.testing.assert_allclose(out, [[2, 0], [0, 1], [5, 5]])

    ex = make(tiny_model, tmp_path, use_cache=False)
    train_vecs = ex.embed(train["text"].tolist())
    items = pd.DataFrame({"item_id": ["i2", "i9", "i3"], "item_text": ["great guitar", "cheap cable", ""]})
    ids, out = item_text_vectors(train, train_vecs, items, extractor=ex)
    assert ids.tolist() == ["i1", "i2", "i3", "i9"]
    np.testing.assert_allclose(out[0], train_vecs[[0, 2]].mean(0), atol=1e-6)
    np.testing.assert_allclose(out[1], ex.embed(["great guitar"])[0], atol=1e-6)
    np.testing.assert_allclose(out[2], train_vecs[3], atol=1e-6)  # blank item text -> review mean
    np.testing.assert_allclose(out[3], ex.embed(["cheap cable"])[0], atol=1e-6)

    with pytest.raises(ValueError, match="rows"):
        item_text_vectors(train, vecs[:2])
    with pytest.raises(ValueError, match="dimension"):
        item_text_vectors(train, vecs, items, extractor=ex)


def test_default_packaged_encoder_offline(tmp_path):
    path = default_model_path()
    assert Path(path, "config.json").is_file()
    ex = BertFeatureExtractor("default", device="cpu", cache_dir=tmp_path)
    assert ex.dim == 384
    out = ex.embed(["this guitar sounds great", "the guitar has a great sound", "my parcel arrived late"])
    assert out.shape == (3, 384)
    sims = cosine(out[0], out[1:])
    assert sims[0] > sims[1] + 0.2


# ------------------------------------------------------------------------------------------
# Real data


def _data_home(request: pytest.FixtureRequest) -> Path:
    try:
        value = request.getfixturevalue("shared_data")
    except pytest.FixtureLookupError:
        value = os.environ.get("TEXTINTEREST_DATA")
    if not value:
        pytest.skip("TEXTINTEREST_DATA is not set: real-data test skipped")
    return Path(value if isinstance(value, (str, os.PathLike)) else os.environ["TEXTINTEREST_DATA"])


@pytest.mark.realdata
@pytest.mark.slow
def test_reviews_of_same_item_are_closer(request, tmp_path):
    from textinterest.apps.benchmarks import load_reviews

    df = load_reviews(_data_home(request))
    df = df[df["text"].str.len() > 0]
    rng = np.random.default_rng(0)
    items = rng.choice(df["item_id"].unique(), size=150, replace=False)
    sample = df[df["item_id"].isin(items)].groupby("item_id").head(4).reset_index(drop=True)
    ex = BertFeatureExtractor("default", device="cpu", fast="auto")  # default cache: reruns are fast
    vecs = ex.embed(sample["text"].tolist())
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = vecs @ vecs.T
    same = sample["item_id"].to_numpy()[:, None] == sample["item_id"].to_numpy()[None, :]
    off_diag = ~np.eye(len(sample), dtype=bool)
    assert sims[same & off_diag].mean() > sims[~same].mean() + 0.05


# ------------------------------------------------------------------------------------------
# CUDA (runs only where a GPU is present)


@pytest.mark.gpu
def test_cuda_autocast_matches_cpu(tiny_model, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = make(tiny_model, tmp_path, use_cache=False).embed(TEXTS)
    gpu = BertFeatureExtractor(str(tiny_model), device="cuda", use_cache=False, fast="auto")
    assert gpu.fast_mode is None  # CPU fast paths do not apply on CUDA
    out = gpu.embed(TEXTS)
    assert out.dtype == np.float32
    assert cosine(out, cpu).min() > 0.99


def test_embed_benchmark_on_tiny_model(tiny_model, tmp_path):
    from textinterest.apps.benchmarks import format_embed_table, run_embed_benchmark

    texts = [f"{t} number {i}" for i, t in enumerate(TEXTS * 4)]
    out = tmp_path / "embed.json"
    result = run_embed_benchmark(
        texts=texts,
        model=str(tiny_model),
        max_length=32,
        batch_size=4,
        repeats=2,
        paths=["sorted", "int8"],
        json_out=out,
        verbose=False,
    )
    rows = {r["path"]: r for r in result["paths"]}
    assert set(rows) == {"naive", "sorted", "int8"}
    assert rows["naive"]["speedup_vs_naive"] == pytest.approx(1.0)
    assert rows["sorted"]["cos_min"] > 0.9999  # dynamic padding does not change the vectors
    assert len(rows["sorted"]["seconds"]) == 2
    assert result["cache"]["warm_hits"] == len(texts) and result["cache"]["warm_encoded"] == 0
    assert result["cache"]["warm_equal_cold"]
    assert out.is_file() and "reviews/s" in format_embed_table(result)
