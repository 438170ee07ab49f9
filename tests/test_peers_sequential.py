"""Tests of the SASRec and GRU4Rec peers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from textinterest.datasets.splits import split_interactions
from textinterest.evaluation import evaluate_ranking
from textinterest.models.peers.sequential import GRU4Rec, GRU4RecRecommender, NextItemConfig, SASRec, SASRecRecommender
from textinterest.models.peers.sequential_text import SASRecTextRecommender
from textinterest.protocol.protocols import fit_for_test, validation_score
from textinterest.training import TrainConfig


def _chain(n_users=40, n_items=12, length=8, seed=0):
    """Every user walks items k, k+1, k+2, ... (mod n_items) from a random start."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        for j in range(length):
            rows.append((f"u{u}", f"i{(start + j) % n_items}", np.nan, 1000 + j, len(rows)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "source_order"])


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_state_is_causal(cls):
    torch.manual_seed(0)
    model = cls(NextItemConfig(n_items=10, hidden=16, n_layers=2, n_heads=2, dropout=0.0, max_len=6)).eval()
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[1, 2, 3, 9, 8, 7]])  # same prefix, different future
    with torch.no_grad():
        ha, hb = model(a), model(b)
    assert ha.shape == (1, 6, 16)
    torch.testing.assert_close(ha[:, :3], hb[:, :3])
    assert not torch.allclose(ha[:, 3], hb[:, 3])


def test_sasrec_right_padding_does_not_change_valid_states():
    torch.manual_seed(0)
    model = SASRec(NextItemConfig(n_items=10, hidden=16, n_layers=2, dropout=0.0, max_len=6)).eval()
    with torch.no_grad():
        short = model(torch.tensor([[3, 4, 5]]))
        padded = model(torch.tensor([[3, 4, 5, 0, 0, 0]]))
        empty = model(torch.tensor([[0, 0]]))
    torch.testing.assert_close(short, padded[:, :3])
    assert torch.isfinite(empty).all()


@pytest.mark.parametrize(
    "cls,loss,examples",
    [
        (SASRecRecommender, "ce", "prefix"),
        (SASRecRecommender, "ce", "window"),
        (SASRecRecommender, "bce", "prefix"),
        (GRU4RecRecommender, "ce", "prefix"),
    ],
)
def test_learns_a_chain(cls, loss, examples):
    split = split_interactions(_chain(), "leave-last-out")
    config = TrainConfig(epochs=40, lr=0.01, batch_size=32, patience=10, seed=0, progress=False)
    model = cls(hidden=32, n_layers=1, dropout=0.0, max_len=8, loss=loss, examples=examples, train_config=config)
    model.fit(split.train, split.val)
    res = evaluate_ranking(
        lambda u: model.score_items(model.user_index.ids[u]),
        split.train,
        split.val,
        model.user_index,
        model.item_index,
        ks=(1, 5),
    )
    assert res["hr@1"] > 0.7  # chance: 1 / 6 candidates left
    scores = model.score_items(["u0", "unknown"])
    assert scores.shape == (2, len(model.item_index)) and np.isfinite(scores).all()


def test_every_prefix_is_one_example_with_the_next_item_as_target():
    split = split_interactions(_chain(n_users=3, n_items=30, length=9), "leave-last-out")
    model = SASRecRecommender(hidden=8, n_layers=1, max_len=4, train_config=TrainConfig(epochs=1, progress=False))
    model.fit(split.train)
    seq = model.seq
    ex = model._examples
    assert len(ex) == int((seq.lengths - 1).clip(0).sum())  # one per step but each user's first
    for u, start, end, target in ex:
        s, n = seq.starts[u], seq.lengths[u]
        assert target == end and s < end < s + n  # the target is the step right after the input
        assert start == max(s, end - 4)  # the last max_len steps before it
    # every (user, target) pair appears once
    assert len({(u, t) for u, _, _, t in ex}) == len(ex)


def test_prefix_loss_equals_a_hand_computation():
    split = split_interactions(_chain(n_users=4, n_items=15, length=7), "leave-last-out")
    config = TrainConfig(epochs=1, progress=False, seed=3)
    model = SASRecRecommender(hidden=8, n_layers=2, inner=16, dropout=0.0, max_len=3, train_config=config)
    model.fit(split.train)
    module = model.module.eval()
    ex = model._examples[:7]
    batch = model._batch(ex, np.random.default_rng(0))
    with torch.no_grad():
        got = model._loss(module, batch)
        losses = []
        for _u, start, end, target in ex:  # each prefix alone, unpadded, its last state scored over all items
            items = torch.as_tensor(model.seq.item[start:end] + 1)[None]
            h = module(items)[0, -1]
            logits = h @ module.item_emb.weight[1:].T
            losses.append(-torch.log_softmax(logits, 0)[model.seq.item[target]])
    torch.testing.assert_close(got, torch.stack(losses).mean())


def test_sasrec_blocks_are_post_layer_norm():
    torch.manual_seed(0)
    config = NextItemConfig(n_items=10, hidden=16, n_layers=2, n_heads=2, inner=32, dropout=0.0, max_len=6)
    model = SASRec(config).eval()
    block = model.blocks[0]
    x = torch.randn(2, 5, 16)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        a = block.attn(x, x, x, attn_mask=causal, need_weights=False)[0]
        mid = torch.nn.functional.layer_norm(x + a, (16,), eps=1e-12)
        want = torch.nn.functional.layer_norm(mid + block.ffn(mid), (16,), eps=1e-12)
        torch.testing.assert_close(block(x, causal), want)
        out = model(torch.tensor([[1, 2, 3, 0]]))
    # the last operation of every position is a layer norm (weight 1, bias 0 at init)
    torch.testing.assert_close(out.mean(-1), torch.zeros(1, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1, unbiased=False), torch.ones(1, 4), atol=1e-3, rtol=0)
    pre = SASRec(NextItemConfig(n_items=10, hidden=16, n_layers=2, dropout=0.0, max_len=6, norm="pre")).eval()
    with torch.no_grad():
        y = pre.blocks[0](x, causal)
    assert not torch.allclose(y.mean(-1), torch.zeros(2, 5), atol=1e-3)  # a pre-LN block ends on a residual sum


def test_weights_start_small_and_normal():
    model = SASRec(NextItemConfig(n_items=500, hidden=64, max_len=50))
    for w in (model.item_emb.weight[1:], model.blocks[0].ffn[0].weight, model.blocks[0].attn.in_proj_weight):
        assert abs(float(w.detach().std()) - 0.02) < 0.003
    assert float(model.item_emb.weight[0].detach().abs().sum()) == 0.0  # padding


def test_without_refit_the_validation_item_joins_the_history():
    split = split_interactions(_chain(), "leave-last-out")
    config = TrainConfig(epochs=40, lr=0.01, batch_size=32, patience=10, seed=0, progress=False)

    def factory(frame):
        return SASRecRecommender(hidden=32, n_layers=1, dropout=0.0, max_len=8, refit=False, train_config=config)

    model, history, info = fit_for_test(factory, split.train, split.val, "val-in-history")
    assert info["refit"] is False and info["history"] == "train+validation"
    assert len(history) == len(split.train) + len(split.val)
    assert len(model.item_index) == split.train.item_id.nunique()  # fitted on train only
    assert int(model.seq.lengths.sum()) == len(history)  # every validation item is a history step
    # NDCG@10 of the test item, the chain's next step after the validation item
    assert validation_score(model, history, split.test, "ranking") > 0.8
    refit, _, refit_info = fit_for_test(
        lambda frame: SASRecRecommender(max_len=8, refit=True, train_config=config), split.train, split.val
    )
    assert refit_info["refit"] is True and len(refit.item_index) == history.item_id.nunique()


def test_long_histories_use_the_last_window():
    split = split_interactions(_chain(n_users=10, n_items=30, length=25), "leave-last-out")
    config = TrainConfig(epochs=2, batch_size=8, seed=0, progress=False, patience=0)
    model = SASRecRecommender(hidden=16, n_layers=1, max_len=6, train_config=config).fit(split.train)
    assert model.score_items(model.user_index.ids).shape == (10, len(model.item_index))


def test_bad_arguments():
    with pytest.raises(ValueError, match="ranking"):
        SASRecRecommender("rating")
    with pytest.raises(ValueError, match="loss"):
        GRU4RecRecommender(loss="bpr")
    with pytest.raises(ValueError, match="divisible"):
        SASRecRecommender(hidden=10, n_heads=3)
    one_step = _chain(n_users=3, length=1)
    with pytest.raises(ValueError, match="two or more"):
        SASRecRecommender(train_config=TrainConfig(epochs=1, progress=False)).fit(one_step)


def _text_model(split, vectors, epochs=3):
    config = TrainConfig(epochs=epochs, lr=0.01, batch_size=16, patience=0, seed=0, progress=False)
    return SASRecTextRecommender(vectors=vectors, hidden=8, n_layers=1, max_len=8, train_config=config)


def test_sasrec_text_scores_read_only_reviews_written_before_the_prediction_time():
    split = split_interactions(_chain(n_users=20, n_items=10, length=6), "leave-last-out")
    split.train["timestamp"] += np.arange(len(split.train)) % 7  # users' steps interleave in time
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(split.train), 6)).astype(np.float32)
    model = _text_model(split, vectors).fit(split.train)
    last = split.train.groupby("user_id").timestamp.max()
    user, when = last.idxmin(), int(last.min()) + 1  # after the user's whole history
    assert (split.train.timestamp >= when).sum() >= 10  # while other reviews come later
    model.set_prediction_times(pd.DataFrame({"user_id": [user], "timestamp": [when]}))
    before = model.score_items([user])
    times = split.train.timestamp.to_numpy()

    def rescored(changed):
        other = vectors.copy()
        other[changed] = rng.normal(size=(int(changed.sum()), 6))
        model._text = model._text_history(other, split.train)
        model._set_step_text(model._times)
        return model.score_items([user])

    np.testing.assert_allclose(rescored(times >= when), before, rtol=1e-5, atol=1e-6)  # later reviews: no effect
    assert np.abs(rescored(times < when) - before).max() > 1e-4  # earlier ones are read


def test_sasrec_text_learns_a_chain_scored_at_validation_time():
    split = split_interactions(_chain(n_users=60, n_items=12, length=6), "leave-last-out")
    item_codes = split.train.item_id.str[1:].astype(int).to_numpy()
    onehot = np.eye(12, dtype=np.float32)[item_codes]  # each review's text identifies its item
    model = _text_model(split, onehot, epochs=30).fit(split.train, split.val)
    model.set_prediction_times(split.val)
    assert validation_score(model, split.train, split.val, "ranking") > 0.5  # chance: about 0.2


def _padded(lengths, T, n_items, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.as_tensor(lengths)
    items = torch.randint(1, n_items + 1, (len(lengths), T), generator=g)
    return items * (torch.arange(T)[None] < lengths[:, None]), lengths


def _sasrec(norm="post", heads=1, text_dim=0, dropout=0.0):
    from textinterest.models.peers.sequential_text import TextSASRec

    config = NextItemConfig(n_items=30, hidden=16, n_layers=2, n_heads=heads, inner=32, dropout=dropout, max_len=40)
    config.norm = norm
    return TextSASRec(config, text_dim) if text_dim else SASRec(config)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("heads,text_dim", [(1, 0), (2, 0), (2, 5)])
def test_last_states_equal_the_last_step_of_the_full_forward(norm, heads, text_dim):
    torch.manual_seed(0)
    model = _sasrec(norm, heads, text_dim).eval()
    # lengths across several length groups, both edges of a group, the longest, and an empty history
    items, lengths = _padded([0, 1, 2, 7, 8, 9, 16, 17, 33, 40, 3], 40, 30)
    extra = torch.randn(len(items), 40, text_dim) if text_dim else None
    with torch.no_grad():
        full = model(items, extra)[torch.arange(len(items)), (lengths - 1).clamp(min=0)]
        fast = model.last_states(items, lengths, extra)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    if text_dim:  # both paths add each step's projected text to its item embedding
        with torch.no_grad():
            without = model.last_states(items, lengths, torch.zeros_like(extra))
        assert (fast - without).abs().max() > 1e-3


def test_last_states_gradients_equal_the_full_forward():
    torch.manual_seed(0)
    model = _sasrec(heads=2)  # training mode, no dropout
    items, lengths = _padded([1, 5, 9, 12, 30, 4], 30, 30, seed=1)
    weights = torch.randn(len(items), 16)

    def grads(states):
        model.zero_grad()
        (states * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full = grads(model(items)[torch.arange(len(items)), lengths - 1])
    fast = grads(model.last_states(items, lengths))
    assert full.keys() == fast.keys()
    for name in full:
        torch.testing.assert_close(fast[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_the_last_block_at_one_step_draws_dropout_from_the_same_distribution(norm):
    # over many draws, the one-step output has the mean and spread of the full block's output at that
    # step; leaving out the attention-weight, attention-output or feed-forward dropout shrinks the spread
    # (median ratio 0.72-0.88, smallest 0.25-0.42 when measured) and fails here
    from textinterest.models.peers.sequential import SASRecBlock

    torch.manual_seed(0)
    block = SASRecBlock(16, 2, 32, 0.5, norm).train()
    x, last = torch.randn(3, 20, 16), torch.tensor([2, 10, 19])
    causal = torch.triu(torch.ones(20, 20, dtype=torch.bool), diagonal=1)
    torch.manual_seed(1)
    with torch.no_grad():
        full = torch.stack([block(x, causal)[torch.arange(3), last] for _ in range(400)])
        fast = torch.stack([block.forward_at(x, last) for _ in range(400)])
    z = (fast.mean(0) - full.mean(0)) / ((fast.var(0) + full.var(0)) / 400).sqrt()
    ratio = fast.std(0) / full.std(0)
    assert z.abs().max() < 4.5
    assert 0.93 < ratio.median() < 1.07 and ratio.min() > 0.7 and ratio.max() < 1.4


@pytest.mark.parametrize("text", [False, True])
def test_states_all_and_last_score_a_fitted_model_alike(text):
    frame = _chain(n_users=20, n_items=10, length=6)
    frame = frame[~(frame.user_id.isin([f"u{u}" for u in range(10)]) & (frame.timestamp < 1002))]  # shorter histories
    split = split_interactions(frame.reset_index(drop=True), "leave-last-out")
    if text:
        vectors = np.random.default_rng(0).normal(size=(len(split.train), 6)).astype(np.float32)
        model = _text_model(split, vectors).fit(split.train)
    else:
        config = TrainConfig(epochs=3, batch_size=16, progress=False)
        model = SASRecRecommender(hidden=8, n_layers=2, max_len=4, train_config=config).fit(split.train)
    users = list(model.user_index.ids) + ["unknown"]  # histories of 2 and 4 steps, and an empty one
    fast = model.score_items(users)
    model.states = "all"
    np.testing.assert_allclose(model.score_items(users), fast, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="states"):
        SASRecRecommender(states="some")
