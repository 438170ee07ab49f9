"""Scale paths: vectorised synthetic world, hashing encoder, bounded ranking, KNN refusal, scale benchmark, Ray."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from textinterest.apps.scale import STAGES, embed_to_memmap, format_scale_table, growth_exponents
from textinterest.constants import CANONICAL_COLUMNS, ITEM_COL, RATING_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets import load_dataset
from textinterest.datasets.base import UnknownDatasetError
from textinterest.datasets.synthetic import TOPICS, parse_size
from textinterest.evaluation import IdIndex, evaluate_ranking, ranking_metrics
from textinterest.text.hashing import HashingEncoder, is_hashing, make_extractor, parse_hashing

# --------------------------------------------------------------------------- vectorised synthetic world


@pytest.fixture(scope="module")
def big_world():
    return load_dataset("synthetic", n_users=1500, n_items=120, seed=3, vectorised=True)


def test_vectorised_world_keeps_the_structure(big_world):
    df, gt = big_world.interactions, big_world.ground_truth
    assert list(df.columns) == list(CANONICAL_COLUMNS)
    per_user = df.groupby(USER_COL).size()
    assert df[USER_COL].nunique() == 1500 and per_user.min() >= 8 and per_user.max() <= 30
    assert not df.duplicated([USER_COL, ITEM_COL]).any()
    assert df.groupby(USER_COL)[TIME_COL].apply(lambda t: t.is_monotonic_increasing and t.is_unique).all()
    assert set(df[RATING_COL].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0} and df[RATING_COL].nunique() == 5
    assert big_world.report.n_read == big_world.report.n_kept == len(df)
    # items mostly from the active topic, active topics among the user's interests, switches happen
    item_topic = df[ITEM_COL].map(gt["item_topic"]).to_numpy()
    assert (item_topic == gt["review_topic"]).mean() > 0.85
    users = df[USER_COL].to_numpy()
    for user in list(gt["user_topics"])[:100]:
        assert set(gt["review_topic"][users == user]) <= set(gt["user_topics"][user])
    groups = df.groupby(USER_COL).indices.values()
    changes = np.mean([np.mean(np.diff(gt["review_topic"][idx]) != 0) for idx in groups])
    assert 0.1 < changes < 0.35


def test_vectorised_text_matches_topic_and_rating(big_world):
    df, gt = big_world.interactions, big_world.ground_truth
    topics = df[ITEM_COL].map(gt["item_topic"]).to_numpy()
    texts = df[TEXT_COL].tolist()
    for j in range(0, len(df), 97):
        words = TOPICS[gt["topics"][topics[j]]]
        assert sum(w in texts[j] for w in words) >= 2, texts[j]
    good = "great|excellent|fantastic|superb|reliable|wonderful|solid|impressive"
    bad = "disappointing|poor|awful|flimsy|cheap|useless|terrible|frustrating"
    pos = df[df[RATING_COL] >= 4][TEXT_COL].str.contains(good)
    neg = df[df[RATING_COL] <= 2][TEXT_COL].str.contains(bad)
    assert pos.all() and neg.all()
    assert (df["summary"].str.len() > 3).all() and (df[TEXT_COL].str.len() > 40).all()
    assert "  " not in " ".join(texts[:500])  # written clean: the generator skips the text cleaning pass


def test_vectorised_world_is_deterministic_and_seeded():
    a = load_dataset("synthetic", n_users=80, n_items=40, seed=5, vectorised=True).interactions
    b = load_dataset("synthetic", n_users=80, n_items=40, seed=5, vectorised=True).interactions
    c = load_dataset("synthetic", n_users=80, n_items=40, seed=6, vectorised=True).interactions
    pd.testing.assert_frame_equal(a, b)
    assert not a[[ITEM_COL, RATING_COL]].equals(c[[ITEM_COL, RATING_COL]])


def test_small_catalogue_still_gives_unique_user_item_pairs():
    df = load_dataset("synthetic", n_users=60, n_items=12, n_topics=4, vectorised=True).interactions
    assert not df.duplicated([USER_COL, ITEM_COL]).any()
    assert df.groupby(USER_COL).size().max() <= 12


def test_default_world_is_unchanged_and_big_worlds_switch_to_vectorised():
    loop = load_dataset("synthetic", n_users=50, n_items=60)
    explicit = load_dataset("synthetic", n_users=50, n_items=60, vectorised=False)
    pd.testing.assert_frame_equal(loop.interactions, explicit.interactions)
    fast = load_dataset("synthetic", n_users=50, n_items=60, vectorised=True)
    assert not loop.interactions[ITEM_COL].equals(fast.interactions[ITEM_COL])
    # 3000 users x 19 reviews is above VECTORISED_FROM: the default picks the vectorised generator
    auto = load_dataset("synthetic", n_users=3000, n_items=100, seed=2)
    vec = load_dataset("synthetic", n_users=3000, n_items=100, seed=2, vectorised=True)
    pd.testing.assert_frame_equal(auto.interactions, vec.interactions)


def test_sized_names():
    assert parse_size("50_000x2000") == {"n_users": 50000, "n_items": 2000}
    ds = load_dataset("synthetic:120x40")
    assert ds.interactions[USER_COL].nunique() == 120 and len(ds.items) == 40
    for bad in ("synthetic:x", "synthetic:10x", "synthetic:0x5", "synthetic:ax3"):
        with pytest.raises(UnknownDatasetError):
            load_dataset(bad)
    with pytest.raises(TypeError, match="either in the name or as options"):
        load_dataset("synthetic:10x20", n_users=5)


# --------------------------------------------------------------------------- hashing encoder


def test_hashing_vectors(tmp_path):
    enc = HashingEncoder(dim=64, cache_dir=tmp_path)
    texts = ["great guitar strings", "great guitar strings, great sound", "the tent leaked in the rain", ""]
    v = enc.embed(texts)
    assert v.shape == (4, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0, rtol=1e-5)
    assert not v[3].any()  # empty text: zero vector
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3  # shared words: closer
    again = HashingEncoder(dim=64, use_cache=False).embed(texts)
    np.testing.assert_array_equal(v, again)  # same vectors in a fresh object, with or without the cache
    other_seed = HashingEncoder(dim=64, seed=1, use_cache=False).embed(texts)
    assert not np.allclose(v[:3], other_seed[:3])


def test_hashing_cache_is_the_shared_cache(tmp_path):
    texts = [f"review {i} about drums" for i in range(50)]
    first = HashingEncoder(dim=32, cache_dir=tmp_path)
    a = first.embed(texts)
    assert first.stats["cache_hits"] == 0 and first.stats["encoded"] == 50
    second = HashingEncoder(dim=32, cache_dir=tmp_path)
    b = second.embed(texts + texts[:5])
    assert second.stats["cache_hits"] == 50 and second.stats["encoded"] == 0
    np.testing.assert_array_equal(a, b[:50])
    assert (tmp_path / second.cache_key() / "meta.json").is_file()
    assert HashingEncoder(dim=16, cache_dir=tmp_path).cache_key() != second.cache_key()


def test_hashing_names_and_factory(tmp_path):
    assert is_hashing("hashing") and is_hashing("hashing:384") and not is_hashing("default")
    assert parse_hashing("hashing") == 256 and parse_hashing("hashing:384") == 384
    for bad in ("hashing:0", "hashing:x"):
        with pytest.raises(ValueError, match="positive integer"):
            parse_hashing(bad)
    enc = make_extractor("hashing:48", cache_dir=tmp_path, device="cpu", progress=False)
    assert isinstance(enc, HashingEncoder) and enc.dim == 48 and enc.cache_root == tmp_path
    with pytest.raises(TypeError, match="texts"):
        enc.embed("one string")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        enc.embed(["ok", None])


def test_frozen_sentiment_on_hashing(tmp_path, big_world):
    from textinterest.text.sentiment import SentimentClassifier

    df = big_world.interactions
    df = df[df[RATING_COL] != 3].head(1500)
    labels = (df[RATING_COL] >= 4).astype(int).to_numpy()
    texts = df[TEXT_COL].tolist()
    clf = SentimentClassifier("hashing", mode="frozen", cache_dir=tmp_path, device="cpu", grid=(1.0,))
    clf.fit(texts[:1000], labels[:1000])
    accuracy = ((np.asarray(clf.score(texts[1000:])) > 0).astype(int) == labels[1000:]).mean()
    assert accuracy > 0.9
    with pytest.raises(ValueError, match="no weights to fine-tune"):
        SentimentClassifier("hashing", mode="finetune")


# --------------------------------------------------------------------------- bounded ranking, KNN refusal


def test_ranking_in_small_chunks_equals_one_matrix():
    rng = np.random.default_rng(0)
    n_users, n_items = 37, 25
    users = [f"u{i}" for i in range(n_users)]
    items = [f"i{j}" for j in range(n_items)]
    train = pd.DataFrame({USER_COL: rng.choice(users, 200), ITEM_COL: rng.choice(items, 200)})
    test = pd.DataFrame({USER_COL: users, ITEM_COL: rng.choice(items, n_users)})
    scores = np.round(rng.normal(size=(n_users, n_items)), 1)  # rounding makes ties
    ui, ii = IdIndex(users), IdIndex(items)

    def score_fn(u):
        return scores[u]

    whole = evaluate_ranking(score_fn, train, test, ui, ii, batch_size=4096)
    chunked = evaluate_ranking(score_fn, train, test, ui, ii, max_cells=n_items * 3)  # 3 users per call
    one_by_one = evaluate_ranking(score_fn, train, test, ui, ii, max_cells=1)
    assert whole == chunked == one_by_one
    seen = np.zeros((n_users, n_items))
    seen[ui.index_of(train[USER_COL].to_numpy()), ii.index_of(train[ITEM_COL].to_numpy())] = 1
    reference = ranking_metrics(scores, seen, ii.index_of(test[ITEM_COL].to_numpy()))
    for key, value in reference.items():
        assert whole[key] == pytest.approx(value)
    with pytest.raises(ValueError, match="max_cells"):
        evaluate_ranking(score_fn, train, test, ui, ii, max_cells=0)


def test_knn_refuses_with_the_estimated_memory(monkeypatch):
    from textinterest.models import baselines
    from textinterest.models.baselines import SurpriseModel

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            USER_COL: [f"u{i % 60}" for i in range(400)],
            ITEM_COL: [f"i{i % 23}" for i in range(400)],
            RATING_COL: rng.integers(1, 6, 400).astype(float),
            TIME_COL: np.arange(400),
        }
    )
    monkeypatch.setattr(baselines, "knn_memory_limit_bytes", lambda: 24 * 59.0**2)
    with pytest.raises(MemoryError, match=r"60 users would need about .* GiB"):
        SurpriseModel("KNNBaseline").fit(df)
    item_based = SurpriseModel("KNNBaseline", sim_options={"user_based": False})
    assert item_based.fit(df).algo_ is not None  # 23 items: under the limit
    monkeypatch.setattr(baselines, "knn_memory_limit_bytes", lambda: 24 * 22.0**2)
    with pytest.raises(MemoryError, match="23 items"):
        SurpriseModel("KNNBaseline", sim_options={"user_based": False}).fit(df)


# --------------------------------------------------------------------------- scale benchmark


def test_growth_exponents():
    sizes = [1e4, 1e5, 1e6]
    linear = growth_exponents(sizes, [0.5, 5.0, 50.0])
    assert linear["fit"] == pytest.approx(1.0) and linear["fit_sizes"] == [100000, 1000000]
    quadratic = growth_exponents(sizes, [1.0, 100.0, 10000.0], fit_from=0)
    assert quadratic["fit"] == pytest.approx(2.0) and quadratic["pairs"]["10000->100000"] == pytest.approx(2.0)
    assert growth_exponents([1e4], [1.0])["fit"] is None


def test_embed_to_memmap(tmp_path):
    enc = HashingEncoder(dim=16, use_cache=False)
    texts = [f"text {i}" for i in range(25)]
    out = embed_to_memmap(enc, texts, tmp_path / "v.npy", chunk=7)
    assert isinstance(out, np.memmap) and not out.flags.writeable
    np.testing.assert_array_equal(out, enc.embed(texts))


@pytest.mark.slow
def test_scale_benchmark_end_to_end(tmp_path):
    from textinterest.apps.scale import plot_scale, run_scale_benchmark

    out = tmp_path / "scale.json"
    result = run_scale_benchmark([400, 800], n_items=60, json_out=out, verbose=False, fit_from=0)
    assert json.loads(out.read_text())["config"]["n_items"] == 60
    for run in result["sizes"]:
        assert run["complete"] and set(run["stages"]) == set(STAGES)
        assert all(s["seconds"] > 0 and s["peak_rss_mb"] > 0 for s in run["stages"].values())
        assert 0.0 <= run["metrics"]["interest"]["hr@10"] <= 1.0
    assert result["sizes"][1]["n_reviews"] > result["sizes"][0]["n_reviews"]
    assert result["exponents"]["embed"]["seconds"]["fit"] is not None
    assert "train_interest" in format_scale_table(result)
    assert plot_scale(result, tmp_path / "scale.png").stat().st_size > 1000
    again = run_scale_benchmark([400, 800], n_items=60, verbose=False, fit_from=0, reuse=out)
    assert again["sizes"] == result["sizes"]  # complete sizes of the earlier run are kept, not rerun


# --------------------------------------------------------------------------- textinterest embed (local and Ray)


def test_embed_command_fills_the_cache(tmp_path, monkeypatch, capsys):
    from textinterest.apps.cli import main

    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path))
    assert main(["embed", "synthetic:30x20", "--encoder", "hashing:32", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["n_cached_before"] == 0 and first["n_embedded"] == first["n_unique"] > 30 * 8
    assert main(["embed", "synthetic:30x20", "--encoder", "hashing:32", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["n_embedded"] == 0 and second["n_cached_before"] == first["n_unique"]
    enc = HashingEncoder(dim=32, cache_dir=tmp_path / "embeddings")
    enc.embed(load_dataset("synthetic:30x20").interactions[TEXT_COL].tolist())
    assert enc.stats["encoded"] == 0  # the evaluation path reads what the command wrote


@pytest.mark.slow
def test_ray_engine_on_a_two_worker_cluster_gives_the_single_process_vectors(tmp_path):
    ray = pytest.importorskip(
        "ray", reason="the Ray engine needs the optional extra 'scale': pip install 'textinterest[scale]'"
    )
    from ray.cluster_utils import Cluster

    from textinterest.apps.distributed import embed_to_cache

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        assert sum(1 for node in ray.nodes() if node["Alive"]) == 3
        texts = load_dataset("synthetic:40x30").interactions[TEXT_COL].tolist() + ["", "dup", "dup"]
        report = embed_to_cache(texts, "hashing:64", engine="ray", num_actors=2, batch_size=64, cache_dir=tmp_path)
        assert report["n_embedded"] == report["n_unique"] == len(set(texts))
    finally:
        ray.shutdown()
        cluster.shutdown()
    from_cache = HashingEncoder(dim=64, cache_dir=tmp_path)
    vectors = from_cache.embed(texts)
    assert from_cache.stats["encoded"] == 0 and from_cache.stats["cache_hits"] == len(set(texts))
    np.testing.assert_array_equal(vectors, HashingEncoder(dim=64, use_cache=False).embed(texts))


# --------------------------------------------------------------------------- accelerator paths (checked on CPU)


def test_token_budget_batches():
    from textinterest.text.gpu_embed import token_budget_batches

    lengths = [5, 50, 3, 12, 12, 40, 7, 100, 1]
    batches = token_budget_batches(lengths, max_tokens=60, max_batch=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 60
    assert [lengths[i] for i in batches[0]] == [1, 3, 5]  # shortest first, as many as fit
    assert any(len(b) == 1 and lengths[b[0]] == 100 for b in batches)  # over the budget: alone
    with pytest.raises(ValueError):
        token_budget_batches(lengths, max_tokens=0)


def test_overlapped_embedder_matches_the_extractor(tmp_path):
    from tiny_models import build_tiny_model

    from textinterest.text.features import BertFeatureExtractor
    from textinterest.text.gpu_embed import OverlappedEmbedder, compare_throughput

    folder = build_tiny_model(tmp_path / "tiny")
    texts = [("great guitar string " * (i % 9 + 1)).strip() for i in range(70)] + ["", "cheap cable broke"]
    reference = BertFeatureExtractor(str(folder), device="cpu", use_cache=False, fast=None, progress=False).embed(texts)
    emb = OverlappedEmbedder(str(folder), device="cpu", max_tokens=64, max_batch=16, chunk=20, prefetch=2, warmup=1)
    vectors = emb.embed(texts)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert emb.stats["batches"] > 70 * 2 / 64  # the budget split the work
    assert emb.stats["real_tokens"] <= emb.stats["padded_tokens"]
    with pytest.raises(ValueError, match="needs a CUDA device"):
        OverlappedEmbedder(str(folder), device="cpu", dtype="bf16")
    report = compare_throughput(texts, str(folder), device="cpu", repeats=1)
    assert set(report["results"]) == {"fp32"} and len(report["skipped"]) == 2
    assert report["results"]["fp32"]["forward_per_s"] > 0 and report["results"]["fp32"]["embedder_per_s"] > 0


def test_reuse_keeps_only_sizes_run_with_the_same_training_settings(tmp_path, monkeypatch):
    import textinterest.apps.scale as scale

    calls = []

    def fake_child(n, n_items, encoder, verbose, timeout, threads=1):
        calls.append(n)
        stage = {"seconds": n / 100, "cpu_seconds": n / 100, "peak_rss_mb": 1.0, "rss_mb": 1.0}
        return {"n_reviews_target": n, "n_reviews": n, "n_items": n_items, "encoder": encoder, "complete": True,
                "stages": {name: dict(stage) for name in STAGES}}  # fmt: skip

    monkeypatch.setattr(scale, "_child", fake_child)
    out = tmp_path / "scale.json"
    first = scale.run_scale_benchmark([100, 200], n_items=60, json_out=out, verbose=False)
    assert calls == [100, 200] and first["config"]["training"]["mf"]["batch_size"] == scale.TRAINING["mf"]["batch_size"]
    scale.run_scale_benchmark([100, 200, 400], n_items=60, verbose=False, reuse=out)
    assert calls == [100, 200, 400]  # the two earlier sizes are kept
    monkeypatch.setitem(scale.TRAINING, "mf", {"batch_size": 256, "lr": 5e-3})
    scale.run_scale_benchmark([100, 200], n_items=60, verbose=False, reuse=out)
    assert calls == [100, 200, 400, 100, 200]  # other training settings: measured again
