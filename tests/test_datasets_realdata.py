"""Every shared real data file loads, passes its hash check, and gives the counts its README documents.

Needs TEXTINTEREST_DATA pointing at the shared data folder; skipped otherwise.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from textinterest.constants import ITEM_COL, RATING_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets import dataset_summary, load_dataset
from textinterest.datasets.registry import REGISTRY, fetch_file, find_local, verify_file

pytestmark = pytest.mark.realdata


@cache
def _load(name: str, home: str, drop_copies: bool | None = None):
    return load_dataset(name, home, **({} if drop_copies is None else {"drop_copies": drop_copies}))


def load(name: str, home: Path, drop_copies: bool | None = None):
    return _load(name, str(home), drop_copies)


def test_every_shared_file_is_registered_and_passes_its_hash(shared_data):
    files = sorted(p for p in shared_data.rglob("*") if p.is_file() and p.name != "README.md")
    assert files, "no data files found"
    for path in files:
        key = path.relative_to(shared_data).as_posix()
        assert key in REGISTRY, f"{key} is not in the registry"
        verify_file(path, REGISTRY[key])  # raises ChecksumMismatchError on a mismatch
        assert fetch_file(key, shared_data) == path
    present = [k for k in REGISTRY if find_local(k, shared_data) is not None]
    assert len(present) == len(files) == 26  # 5 review files + 21 MovieLens files (no ml-100k.zip here)


def test_musical_instruments(shared_data):
    ds = load_dataset("amazon:Musical_Instruments", shared_data)
    summary = dataset_summary(ds)
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (10_261, 1_429, 900)
    assert (summary["time_min"], summary["time_max"]) == (1_095_465_600, 1_405_987_200)
    assert summary["rating_histogram"] == {"1.0": 217, "2.0": 250, "3.0": 772, "4.0": 2_084, "5.0": 6_938, "unrated": 0}
    assert summary["n_empty_text"] == 7
    report = ds.report
    assert report.n_read == report.n_kept == 10_261 and report.dropped == {}
    # html_unescaped: 513 rows = 492 whose text or summary had an entity html.unescape decodes, plus 21
    # whose only entity is in reviewerName. The README's 502 counts lines matching its own entity
    # pattern; unknown names such as "&M;" are not entities and stay. control_chars_stripped: the 8 lines
    # with \x1a, all in reviewerName. whitespace_normalized: mostly double spaces after full stops.
    assert report.changed == {"html_unescaped": 513, "control_chars_stripped": 8, "whitespace_normalized": 3_704}
    assert report.flagged == {"empty_text": 7, "missing:reviewerName": 27}
    df = ds.interactions
    assert not df[TEXT_COL].str.contains("&#34;|&quot;|\x1a").any()
    assert not df["reviewer_name"].str.contains("\x1a").any()
    assert df["total_votes"].ge(df["helpful_votes"]).all()


def test_all_beauty(shared_data):
    ds = load("amazon2018:All_Beauty", shared_data, drop_copies=False)
    summary = dataset_summary(ds)
    report = ds.report
    # The README counts 5,269 lines, 1,027 exact-duplicate lines and 1,040 (user, item) pairs with more
    # than one line (1,177 surplus lines). Exact duplicates go first (1,027); the remaining surplus is
    # 150 lines in 79 pairs, whose reviews differ (text, time, style...): the latest of each pair stays.
    # 5,269 - 1,027 - 150 = 4,092. Every user and item keeps at least one review (991 / 85).
    assert report.n_read == 5_269
    assert report.dropped == {"exact_duplicate": 1_027, "duplicate_user_item": 150}
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (4_092, 991, 85)
    # README: reviewText missing on 5 lines; one of them was a duplicate, so 4 kept rows have no text
    assert report.flagged == {"empty_text": 4, "missing:reviewText": 4, "missing:summary": 4}
    assert report.changed == {"html_unescaped": 52, "whitespace_normalized": 1_127}
    assert summary["rating_histogram"] == {"1.0": 92, "2.0": 51, "3.0": 76, "4.0": 262, "5.0": 3_611, "unrated": 0}
    # the earliest line (2004-09-21) belongs to a (user, item) pair reviewed again later
    assert (summary["date_min"], summary["date_max"]) == ("2005-06-28T00:00:00Z", "2018-08-23T00:00:00Z")
    df = ds.interactions
    assert df["helpful_votes"].max() == 1_341  # written "1,341" in the file
    assert df["verified"].notna().all() and not df.duplicated([USER_COL, ITEM_COL]).any()
    assert (df["style"].str.len() > 0).sum() > 0 and json.loads(df["style"][df["style"] != ""].iloc[0])


@pytest.mark.parametrize(
    ("name", "n_copies", "n_left", "n_users_3"), [("All_Beauty", 2_812, 1_280, 88), ("AMAZON_FASHION", 2_604, 438, 2)]
)
def test_amazon2018_copies_dropped_by_default(shared_data, name, n_copies, n_left, n_users_3):
    # Most 2018 5-core rows repeat one review (same user, text and time) under sibling item ids;
    # after removing the copies few users keep the 3 distinct reviews a leave-last-out test row needs.
    ds = load(f"amazon2018:{name}", shared_data)
    df = ds.interactions
    assert ds.report.dropped["copied_review"] == n_copies and len(df) == n_left
    has_text = df[TEXT_COL].str.strip() != ""
    assert not df[has_text].duplicated([USER_COL, TEXT_COL, TIME_COL]).any()
    assert int((df[USER_COL].value_counts() >= 3).sum()) == n_users_3


def test_amazon_fashion(shared_data):
    ds = load("amazon2018:AMAZON_FASHION", shared_data, drop_copies=False)
    summary = dataset_summary(ds)
    report = ds.report
    # README: 3,176 lines, 68 exact duplicates, 81 pairs with >1 line (134 surplus); after the exact
    # duplicates, 66 surplus lines remain. 3,176 - 68 - 66 = 3,042.
    assert report.n_read == 3_176
    assert report.dropped == {"exact_duplicate": 68, "duplicate_user_item": 66}
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (3_042, 406, 31)
    assert report.flagged == {"empty_text": 16, "missing:reviewText": 16}
    assert report.changed == {"html_unescaped": 2, "whitespace_normalized": 507}
    assert (summary["time_min"], summary["time_max"]) == (1_261_699_200, 1_530_748_800)


def test_goodreads(shared_data):
    ds = load("goodreads:young_adult_10000", shared_data)
    summary = dataset_summary(ds)
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (10_000, 715, 4_980)
    assert summary["n_unrated"] == 351 and ds.report.changed["rating_0_as_unrated"] == 351
    assert summary["rating_histogram"] == {
        "1.0": 249,
        "2.0": 742,
        "3.0": 2_049,
        "4.0": 3_370,
        "5.0": 3_239,
        "unrated": 351,
    }
    assert (summary["time_min"], summary["time_max"]) == (1_180_294_238, 1_508_627_437)
    assert ds.report.dropped == {} and ds.report.flagged == {}
    # paragraph breaks " \n " become "\n" (5,062 rows changed)
    assert ds.report.changed == {"rating_0_as_unrated": 351, "whitespace_normalized": 5_062}
    assert summary["n_empty_text"] == 0 and ds.interactions["review_id"].is_unique


def test_yelp(shared_data):
    ds = load("yelp:sample", shared_data)
    summary = dataset_summary(ds)
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (10_000, 6_403, 4_174)
    assert summary["rating_histogram"] == {
        "1.0": 749,
        "2.0": 927,
        "3.0": 1_461,
        "4.0": 3_526,
        "5.0": 3_337,
        "unrated": 0,
    }
    assert (summary["date_min"], summary["date_max"]) == ("2005-04-18T00:00:00Z", "2013-01-05T00:00:00Z")
    assert ds.report.dropped == {} and ds.report.flagged == {}
    assert ds.report.changed == {"whitespace_normalized": 6_521}
    df = ds.interactions
    assert df[TEXT_COL].str.contains("\n").sum() > 5_000  # multi-line texts survived the CSV parser
    assert df["review_id"].is_unique and not df[TEXT_COL].str.contains("\ufffd").any()


def test_movielens(shared_data):
    ds = load("movielens:100k", shared_data)
    summary = dataset_summary(ds)
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (100_000, 943, 1_682)
    assert (summary["time_min"], summary["time_max"]) == (874_724_710, 893_286_638)
    assert ds.report.to_dict()["dropped"] == {} and ds.report.changed == {} and ds.report.flagged == {}
    items = ds.items.set_index(ITEM_COL)
    assert len(items) == 1_682
    assert items.loc["1", "item_text"] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert items.loc["267", "title"] == "unknown" and items.loc["267", "release_date"] == ""
    assert items["title"].str.contains("[\x80-\xff]").sum() >= 9  # Latin-1 titles decoded
    assert items["title"].duplicated().sum() == 18
    assert np.isin(ds.interactions[RATING_COL].unique(), [1, 2, 3, 4, 5]).all()


def test_kcore_on_real_data(shared_data):
    ds = load_dataset("goodreads:young_adult_10000", shared_data, kcore=5)
    df = ds.interactions
    assert df.groupby(USER_COL).size().min() >= 5 and df.groupby(ITEM_COL).size().min() >= 5
    assert ds.report.n_kept + ds.report.dropped["kcore"] == 10_000
