"""Loaders, validation and cleaning on small made-up files in each source format."""

from __future__ import annotations

import argparse
import gzip
import json
import zipfile
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from textinterest.constants import CANONICAL_COLUMNS, ITEM_COL, ORDER_COL, RATING_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets import (
    CleaningReport,
    DataFormatError,
    DataNotFoundError,
    ReviewDataset,
    UnknownDatasetError,
    dataset_summary,
    load_dataset,
)
from textinterest.datasets.cleaning import clean_text, kcore_filter

MI = "amazon2014/reviews_Musical_Instruments_5.json.gz"
BEAUTY = "amazon2018/All_Beauty_5.json.gz"
GOODREADS = "goodreads/young_adult_10000.json.gz"


def load(name, home, **kw):
    return load_dataset(name, home, verify=False, **kw)


# ---------------------------------------------------------------- names and options


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset("netflix:prize", tmp_path)
    message = str(info.value)
    for name in (
        "amazon:Musical_Instruments",
        "amazon2018:All_Beauty",
        "goodreads:young_adult_10000",
        "yelp:sample",
        "movielens:100k",
        "synthetic",
    ):
        assert name in message
    for bad in (
        "synthetic:x",
        "amazon",
        "amazon:",
        "goodreads:fantasy_10000",
        "movielens:1m",
        "yelp:full",
        "amazon:../etc",
    ):
        with pytest.raises(UnknownDatasetError):
            load_dataset(bad, tmp_path)


def test_unknown_category_file_names_known_categories(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("amazon:Nonexistent_Category", tmp_path)
    message = str(info.value)
    assert "reviews_Nonexistent_Category_5.json.gz" in message
    assert "Musical_Instruments" in message and str(tmp_path) in message


def test_unknown_option_and_bad_errors_value(tiny_home):
    with pytest.raises(TypeError, match="n_users"):
        load("amazon:Musical_Instruments", tiny_home, n_users=3)
    with pytest.raises(TypeError, match="verify"):
        load_dataset("synthetic", verify=False)
    with pytest.raises(ValueError, match="errors"):
        load("amazon:Musical_Instruments", tiny_home, errors="ignore")


def test_category_matches_registered_name_case_insensitively(tiny_home):
    ds = load("amazon:musical_instruments", tiny_home)
    assert ds.name == "amazon:Musical_Instruments"


def test_unregistered_category_present_locally_loads(tmp_path, write_lines, make_review):
    write_lines(tmp_path / "amazon2014/reviews_Digital_Music_5.json.gz", [make_review.amazon2014(i) for i in range(4)])
    ds = load_dataset("amazon:Digital_Music", tmp_path)  # no hash is registered: nothing to verify
    assert ds.name == "amazon:Digital_Music" and len(ds.interactions) == 4


def test_registered_file_with_wrong_hash_is_refused(tiny_home):
    from textinterest.datasets import ChecksumMismatchError

    with pytest.raises(ChecksumMismatchError):
        load_dataset("amazon:Musical_Instruments", tiny_home)


# ---------------------------------------------------------------- Amazon 2014


def test_amazon2014_columns_types_and_order(tiny_home):
    ds = load("amazon:Musical_Instruments", tiny_home)
    df = ds.interactions
    assert isinstance(ds, ReviewDataset) and ds.items is None
    assert list(df.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)
    assert {"reviewer_name", "helpful_votes", "total_votes"} <= set(df.columns)
    assert "reviewTime" not in df.columns
    assert df[RATING_COL].dtype == np.float64 and df[TIME_COL].dtype == np.int64
    assert pd.api.types.is_string_dtype(df[USER_COL]) and pd.api.types.is_string_dtype(df[ITEM_COL])
    assert list(df.index) == list(range(len(df)))
    assert df[ORDER_COL].is_monotonic_increasing
    # made-up rows: users AUSER0-2 x items B00ITEM0-3 cycle with period 12, so each pair occurs once
    assert len(df) == 12 and ds.report.n_read == 12 and ds.report.n_kept == 12
    row = df.iloc[3]
    assert (row[USER_COL], row[ITEM_COL], row[RATING_COL]) == ("AUSER0", "B00ITEM3", 4.0)
    assert (row["helpful_votes"], row["total_votes"]) == (1, 2)
    assert row[TIME_COL] == 1300000000 + 3 * 86400
    assert row["summary"] == "Summary 3"


def test_amazon2014_missing_optional_fields_are_kept_and_flagged(tmp_path, write_lines, make_review):
    d = make_review.DELETE
    write_lines(
        tmp_path / MI,
        [
            make_review.amazon2014(0, reviewerName=d),
            make_review.amazon2014(1, reviewText=""),
            make_review.amazon2014(2, reviewText=d, summary=d),
            make_review.amazon2014(4, helpful=d),
        ],
    )
    ds = load("amazon:Musical_Instruments", tmp_path)
    df = ds.interactions
    assert len(df) == 4
    assert df.loc[0, "reviewer_name"] == "" and df.loc[2, TEXT_COL] == "" and df.loc[2, "summary"] == ""
    assert (df.loc[3, "helpful_votes"], df.loc[3, "total_votes"]) == (0, 0)
    assert ds.report.flagged == {
        "missing:reviewerName": 1,
        "missing:reviewText": 1,
        "missing:summary": 1,
        "missing:helpful": 1,
        "empty_text": 2,
    }
    assert ds.report.dropped == {}


# ---------------------------------------------------------------- bad input: raise vs drop


def _bad_lines(make_review):
    good = [make_review.amazon2014(i) for i in range(6)]
    bad = {
        "malformed_json": b'{"reviewerID": "AX", "asin": ',
        "missing_field:reviewerID": json.dumps(make_review.amazon2014(7, reviewerID=make_review.DELETE)).encode(),
        "missing_field:asin": json.dumps(make_review.amazon2014(8, asin=None)).encode(),
        "bad_value:overall": json.dumps(make_review.amazon2014(9, overall="abc")).encode(),
        "bad_value:unixReviewTime": json.dumps(make_review.amazon2014(10, unixReviewTime="yesterday")).encode(),
        "non_utf8": json.dumps(make_review.amazon2014(11)).encode().replace(b"Made-up", b"Made\xff-up"),
        "bad_value:helpful": json.dumps(make_review.amazon2014(12, helpful=[1])).encode(),
        "bad_value:reviewText": json.dumps(make_review.amazon2014(13, reviewText=42)).encode(),
    }
    return good, bad


@pytest.mark.parametrize(
    "reason",
    [
        "malformed_json",
        "missing_field:reviewerID",
        "missing_field:asin",
        "bad_value:overall",
        "bad_value:unixReviewTime",
        "non_utf8",
        "bad_value:helpful",
        "bad_value:reviewText",
    ],
)
def test_bad_line_raises_with_file_line_and_field(tmp_path, write_lines, make_review, reason):
    good, bad = _bad_lines(make_review)
    path = write_lines(tmp_path / MI, [*good[:3], bad[reason], *good[3:]])
    with pytest.raises(DataFormatError) as info:
        load("amazon:Musical_Instruments", tmp_path)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(path) in str(err) and "line 4" in str(err)
    assert err.line == 4 and err.reason == reason
    if ":" in reason:
        field = reason.split(":")[1]
        assert err.field == field and repr(field) in str(err)


def test_bad_lines_are_dropped_and_counted(tmp_path, write_lines, make_review):
    good, bad = _bad_lines(make_review)
    write_lines(tmp_path / MI, [good[0], *bad.values(), *good[1:]])
    ds = load("amazon:Musical_Instruments", tmp_path, errors="drop")
    assert ds.report.dropped == {reason: 1 for reason in bad}
    assert ds.report.n_read == len(good) + len(bad)
    assert len(ds.interactions) == len(good) == ds.report.n_kept
    # source_order is the position in the file, bad lines included
    assert ds.interactions[ORDER_COL].tolist() == [0, *range(len(bad) + 1, len(bad) + len(good))]


@pytest.mark.parametrize("rating", [0, 6, 4.5, -1, True, "5"])
def test_amazon_rating_out_of_range_or_wrong_type(tmp_path, write_lines, make_review, rating):
    write_lines(tmp_path / MI, [make_review.amazon2014(0), make_review.amazon2014(1, overall=rating)])
    if rating == 4.5:  # within range: half stars are accepted as they are
        assert load("amazon:Musical_Instruments", tmp_path).interactions[RATING_COL].tolist() == [1.0, 4.5]
        return
    with pytest.raises(DataFormatError, match="line 2.*'overall'"):
        load("amazon:Musical_Instruments", tmp_path)
    ds = load("amazon:Musical_Instruments", tmp_path, errors="drop")
    assert ds.report.dropped == {"bad_value:overall": 1} and len(ds.interactions) == 1


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
@pytest.mark.parametrize("errors", ["raise", "drop"])
def test_empty_file_raises_in_both_modes(tmp_path, content, errors):
    path = tmp_path / MI
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(content))
    with pytest.raises(DataFormatError, match="empty"):
        load("amazon:Musical_Instruments", tmp_path, errors=errors)


def test_file_with_no_valid_record_raises_even_when_dropping(tmp_path, write_lines):
    write_lines(tmp_path / MI, ["not json", "[1, 2]"])
    with pytest.raises(DataFormatError, match="no valid record"):
        load("amazon:Musical_Instruments", tmp_path, errors="drop")


def test_blank_lines_inside_are_counted_not_errors(tmp_path, write_lines, make_review):
    write_lines(tmp_path / MI, [make_review.amazon2014(0), "", "   ", make_review.amazon2014(1), ""])
    ds = load("amazon:Musical_Instruments", tmp_path)
    assert len(ds.interactions) == 2 and ds.report.dropped == {"blank_line": 2}
    assert ds.report.n_read == 2


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / MI
    path.parent.mkdir(parents=True)
    data = gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(2000)))
    path.write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(DataFormatError, match="cannot decompress"):
        load("amazon:Musical_Instruments", tmp_path)


# ---------------------------------------------------------------- cleaning


def test_clean_text_rules():
    assert clean_text("Fits my &#34;Strat&#34; &amp; amp") == ('Fits my "Strat" & amp', True, False, False)
    assert clean_text("caf\x1ae au lait") == ("cafe au lait", False, True, False)
    assert clean_text("  two  spaces\tand tab  ") == ("two spaces and tab", False, False, True)
    assert clean_text("para one. \n para two.\r\n\n\n\nend") == ("para one.\npara two.\n\nend", False, False, True)
    assert clean_text("unknown &M; entity") == ("unknown &M; entity", False, False, False)
    assert clean_text("") == ("", False, False, False)


def test_text_cleaning_is_counted_per_row(tmp_path, write_lines, make_review):
    write_lines(
        tmp_path / MI,
        [
            make_review.amazon2014(0, reviewText="Great &quot;tone&quot;", summary="A &amp; B"),
            make_review.amazon2014(1, reviewerName="\x1a\x1a\x1a"),
            make_review.amazon2014(2, reviewText="double  space"),
            make_review.amazon2014(4, reviewText="clean"),
        ],
    )
    ds = load("amazon:Musical_Instruments", tmp_path)
    df = ds.interactions
    assert df[TEXT_COL].tolist()[:3] == ['Great "tone"', make_review.amazon2014(1)["reviewText"], "double space"]
    assert df.loc[0, "summary"] == "A & B" and df.loc[1, "reviewer_name"] == ""
    assert ds.report.changed == {"html_unescaped": 1, "control_chars_stripped": 1, "whitespace_normalized": 1}


def test_exact_duplicates_and_user_item_duplicates(tmp_path, write_lines, make_review):
    r = make_review.amazon2014
    T0 = 1_300_000_000
    lines = [
        r(0, reviewerID="U1", asin="I1", unixReviewTime=T0 + 200, reviewText="old"),  # 0 superseded by 2
        r(1, reviewerID="U1", asin="I1", unixReviewTime=T0 + 100, reviewText="older"),  # 1 superseded
        r(2, reviewerID="U1", asin="I1", unixReviewTime=T0 + 300, reviewText="latest"),  # 2 kept
        r(3, reviewerID="U2", asin="I1", unixReviewTime=T0 + 500, reviewText="tie a"),  # 3 tie: later line wins
        r(4, reviewerID="U2", asin="I1", unixReviewTime=T0 + 500, reviewText="tie b"),  # 4 kept
        r(5, reviewerID="U3", asin="I2", unixReviewTime=T0 + 50),  # 5 kept
        r(5, reviewerID="U3", asin="I2", unixReviewTime=T0 + 50),  # 6 exact duplicate of 5
    ]
    write_lines(tmp_path / MI, lines)
    ds = load("amazon:Musical_Instruments", tmp_path)
    df = ds.interactions
    assert ds.report.dropped == {"exact_duplicate": 1, "duplicate_user_item": 3}
    assert df[ORDER_COL].tolist() == [2, 4, 5]
    assert df[TEXT_COL].tolist()[:2] == ["latest", "tie b"]
    assert not df.duplicated([USER_COL, ITEM_COL]).any()
    assert ds.report.n_read == 7 and ds.report.n_kept == 3


def test_kcore_iterates_to_a_fixed_point(tmp_path, write_lines, make_review):
    r = make_review.amazon2014
    pairs = [("A", "x"), ("A", "y"), ("B", "x"), ("B", "y"), ("C", "x"), ("C", "z")]
    # 2-core: item z has one rating -> drop it; then C has one -> drop it; A, B x x, y remain
    write_lines(tmp_path / MI, [r(i, reviewerID=u, asin=it) for i, (u, it) in enumerate(pairs)])
    ds = load("amazon:Musical_Instruments", tmp_path, kcore=2)
    df = ds.interactions
    assert sorted(zip(df[USER_COL], df[ITEM_COL])) == [("A", "x"), ("A", "y"), ("B", "x"), ("B", "y")]
    assert ds.report.dropped == {"kcore": 2}
    assert df.groupby(USER_COL).size().min() >= 2 and df.groupby(ITEM_COL).size().min() >= 2
    everything = kcore_filter(df, 1)
    assert len(everything) == 4
    with pytest.raises(ValueError, match="kcore"):
        load("amazon:Musical_Instruments", tmp_path, kcore=0)


# ---------------------------------------------------------------- Amazon 2018


def test_amazon2018_schema(tmp_path, write_lines, make_review):
    r = make_review.amazon2018
    write_lines(
        tmp_path / BEAUTY,
        [
            r(0, vote="1,234", image=["http://example.org/a.jpg"]),
            r(1, vote=make_review.DELETE, style=make_review.DELETE, verified=make_review.DELETE),
            r(2, vote="7", style={"Size:": " 7.0 oz", "Color:": " Blue"}),
            r(4, reviewText=make_review.DELETE),
        ],
    )
    ds = load("amazon2018:All_Beauty", tmp_path)
    df = ds.interactions
    assert ds.name == "amazon2018:All_Beauty"
    assert df["helpful_votes"].tolist() == [1234, 0, 7, 4]
    assert str(df["verified"].dtype) == "boolean" and df["verified"].isna().tolist() == [False, True, False, False]
    assert json.loads(df.loc[2, "style"]) == {"Color:": " Blue", "Size:": " 7.0 oz"} and df.loc[1, "style"] == ""
    assert "image" not in df.columns and "helpful" not in df.columns
    assert ds.report.flagged == {"missing:verified": 1, "missing:reviewText": 1, "empty_text": 1}


def test_amazon2018_copied_reviews_dropped_by_default(tmp_path, write_lines, make_review):
    r = make_review.amazon2018
    t = 1_420_070_400
    lines = [
        r(0, reviewerID="U1", asin="I1", unixReviewTime=t, reviewText="same words"),  # kept (first line)
        r(1, reviewerID="U1", asin="I2", unixReviewTime=t, reviewText="same words"),  # copy under a sibling id
        r(2, reviewerID="U1", asin="I3", unixReviewTime=t + 86400, reviewText="same words"),  # other time: kept
        r(3, reviewerID="U2", asin="I2", unixReviewTime=t, reviewText="same words"),  # other user: kept
        r(4, reviewerID="U1", asin="I4", unixReviewTime=t, reviewText=""),  # empty text is never a copy
        r(5, reviewerID="U1", asin="I5", unixReviewTime=t, reviewText=""),
    ]
    write_lines(tmp_path / BEAUTY, lines)
    ds = load("amazon2018:All_Beauty", tmp_path)
    assert ds.report.dropped == {"copied_review": 1}
    assert sorted(ds.interactions[ITEM_COL]) == ["I1", "I2", "I3", "I4", "I5"]
    assert ds.interactions.loc[ds.interactions[USER_COL] == "U1", ITEM_COL].tolist() == ["I1", "I3", "I4", "I5"]
    kept = load("amazon2018:All_Beauty", tmp_path, drop_copies=False)
    assert len(kept.interactions) == 6 and "copied_review" not in kept.report.dropped


def test_amazon2014_keeps_copies_unless_asked(tmp_path, write_lines, make_review):
    r = make_review.amazon2014
    lines = [r(i, reviewerID="U1", asin=f"I{i}", unixReviewTime=1_300_000_000, reviewText="twin") for i in range(3)]
    write_lines(tmp_path / MI, lines)
    assert len(load("amazon:Musical_Instruments", tmp_path).interactions) == 3
    ds = load("amazon:Musical_Instruments", tmp_path, drop_copies=True)
    assert len(ds.interactions) == 1 and ds.report.dropped == {"copied_review": 2}


@pytest.mark.parametrize("vote", ["12a", "1,23", "-3", 1.5])
def test_amazon2018_bad_vote(tmp_path, write_lines, make_review, vote):
    write_lines(tmp_path / BEAUTY, [make_review.amazon2018(0, vote=vote)])
    with pytest.raises(DataFormatError, match="line 1, field 'vote'"):
        load("amazon2018:All_Beauty", tmp_path)


# ---------------------------------------------------------------- Goodreads


def test_goodreads_rating_zero_time_and_extras(tmp_path, write_lines, make_review):
    r = make_review.goodreads
    write_lines(
        tmp_path / GOODREADS, [r(0, rating=0), r(1, rating=4), r(2, date_added="Sat Mar 05 00:00:00 +0000 2016")]
    )
    ds = load("goodreads:young_adult_10000", tmp_path)
    df = ds.interactions
    assert np.isnan(df.loc[0, RATING_COL]) and df.loc[1, RATING_COL] == 4.0
    assert ds.report.changed["rating_0_as_unrated"] == 1
    expected = int(datetime(2010, 1, 13, 21, 38, 25, tzinfo=timezone.utc).timestamp())  # 13:38:25 -0800
    assert df.loc[0, TIME_COL] == expected
    assert df.loc[2, TIME_COL] == int(datetime(2016, 3, 5, tzinfo=timezone.utc).timestamp())
    assert df.loc[0, TEXT_COL] == "Invented book review 0.\nSecond paragraph."
    assert df["summary"].tolist() == ["", "", ""]
    assert df["n_votes"].tolist() == [0, 1, 2] and df["review_id"].str.len().tolist() == [32] * 3
    assert dataset_summary(ds)["rating_histogram"]["unrated"] == 1


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("rating", 6, "bad_value:rating"),
        ("rating", -1, "bad_value:rating"),
        ("rating", 3.5, "bad_value:rating"),
        ("rating", "4", "bad_value:rating"),
        ("date_added", "2010-01-13", "bad_value:date_added"),
        ("user_id", "", "missing_field:user_id"),
        ("n_votes", "many", "bad_value:n_votes"),
    ],
)
def test_goodreads_bad_values(tmp_path, write_lines, make_review, field, value, reason):
    write_lines(tmp_path / GOODREADS, [make_review.goodreads(0), make_review.goodreads(1, **{field: value})])
    with pytest.raises(DataFormatError) as info:
        load("goodreads:young_adult_10000", tmp_path)
    assert info.value.line == 2 and info.value.reason == reason and info.value.field == field
    ds = load("goodreads:young_adult_10000", tmp_path, errors="drop")
    assert ds.report.dropped == {reason: 1}


# ---------------------------------------------------------------- Yelp


def test_yelp_csv_multiline_text_dates_and_votes(tmp_path, yelp_files):
    rows = [
        'b1,2012-03-04,r1,5,"Great tacos.\n\nWould go again, ""really"".",review,u1,1,2,3',
        "b2,2013-01-05,r2,2,Plain text without quotes,review,u1,0,0,",
        'b1,2011-12-31,r3,4,"Caf\u00e9 with curly \u201cquotes\u201d",review,u2,0,5,0',
    ]
    yelp_files.write_zip(tmp_path / "yelp/yelp.csv.zip", yelp_files.csv(rows))
    ds = load("yelp:sample", tmp_path)
    df = ds.interactions
    assert df[USER_COL].tolist() == ["u1", "u1", "u2"] and df[ITEM_COL].tolist() == ["b1", "b2", "b1"]
    assert df.loc[0, TEXT_COL] == 'Great tacos.\n\nWould go again, "really".'
    assert df.loc[2, TEXT_COL] == "Caf\u00e9 with curly \u201cquotes\u201d"
    assert df.loc[0, TIME_COL] == int(datetime(2012, 3, 4, tzinfo=timezone.utc).timestamp())
    assert df[["cool", "useful", "funny"]].values.tolist() == [[1, 2, 3], [0, 0, 0], [0, 5, 0]]
    assert df["review_id"].tolist() == ["r1", "r2", "r3"] and "type" not in df.columns


def test_yelp_plain_csv_is_accepted(tmp_path, yelp_files):
    (tmp_path / "yelp").mkdir()
    (tmp_path / "yelp/yelp.csv").write_bytes(yelp_files.csv(["b1,2012-03-04,r1,5,ok,review,u1,0,0,0"]))
    assert len(load("yelp:sample", tmp_path).interactions) == 1


def test_yelp_bad_rows_report_first_physical_line(tmp_path, yelp_files):
    rows = [
        'b1,2012-03-04,r1,5,"two\nlines",review,u1,0,0,0',  # lines 2-3
        "b2,2012-03-04,r2,9,bad stars,review,u1,0,0,0",  # line 4
        "b3,03/04/2012,r3,4,bad date,review,u1,0,0,0",  # line 5
        "b4,2012-03-04,r4,4,too few fields",  # line 6
        ",2012-03-04,r5,4,no business,review,u1,0,0,0",  # line 7
        "b6,2012-03-04,r6,4,bad vote,review,u1,x,0,0",  # line 8
    ]
    data = yelp_files.csv(rows).replace(b"bad stars", b"bad \xff stars")
    yelp_files.write_zip(tmp_path / "yelp/yelp.csv.zip", data)
    with pytest.raises(DataFormatError) as info:
        load("yelp:sample", tmp_path)
    assert info.value.line == 4 and info.value.reason == "non_utf8" and "yelp.csv" in str(info.value)
    ds = load("yelp:sample", tmp_path, errors="drop")
    assert ds.report.dropped == {
        "non_utf8": 1,
        "bad_value:date": 1,
        "malformed_csv": 1,
        "missing_field:business_id": 1,
        "bad_value:cool": 1,
    }
    assert len(ds.interactions) == 1 and ds.report.n_read == 6
    data = yelp_files.csv(rows[:3]).replace(b"bad stars", b"fine stars")
    yelp_files.write_zip(tmp_path / "yelp/yelp.csv.zip", data)
    with pytest.raises(DataFormatError) as info:
        load("yelp:sample", tmp_path)
    assert (info.value.line, info.value.field, info.value.reason) == (4, "stars", "bad_value:stars")


def test_yelp_header_without_required_column(tmp_path, yelp_files):
    header = "business_id,date,review_id,text,type,user_id"
    yelp_files.write_zip(tmp_path / "yelp/yelp.csv.zip", yelp_files.csv(["b,2012-01-01,r,t,review,u"], header))
    for errors in ("raise", "drop"):
        with pytest.raises(DataFormatError, match="line 1.*stars"):
            load("yelp:sample", tmp_path, errors=errors)


def test_yelp_zip_without_member(tmp_path):
    path = tmp_path / "yelp/yelp.csv.zip"
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("other.csv", "x\n")
    with pytest.raises(DataFormatError, match="yelp.csv"):
        load("yelp:sample", tmp_path)


# ---------------------------------------------------------------- MovieLens


def _check_movielens(ds):
    df, items = ds.interactions, ds.items
    assert len(df) == 12 and df[USER_COL].nunique() == 4 and df[ITEM_COL].nunique() == 3
    assert (df[TEXT_COL] == "").all() and (df["summary"] == "").all()
    assert df[RATING_COL].between(1, 5).all() and df.loc[0, TIME_COL] == 880001001
    assert list(items.columns[:2]) == [ITEM_COL, "item_text"]
    first = items.set_index(ITEM_COL).loc["1"]
    assert first["title"] == "Caf\u00e9 Movie 1 (1995)"  # u.item is Latin-1
    assert first["genres"] == "Adventure, Comedy"
    assert first["item_text"] == "Caf\u00e9 Movie 1 (1995). Genres: Adventure, Comedy"


def test_movielens_gz_folder(tiny_home):
    _check_movielens(load("movielens:100k", tiny_home))


def test_movielens_plain_folder_and_publisher_zip(tmp_path, ml_files):
    plain = tmp_path / "plain" / "movielens" / "ml-100k"
    plain.mkdir(parents=True)
    for name, data in ml_files().items():
        (plain / name).write_bytes(data)
    _check_movielens(load("movielens:100k", tmp_path / "plain"))
    zipped = tmp_path / "zipped" / "movielens" / "ml-100k.zip"
    zipped.parent.mkdir(parents=True)
    with zipfile.ZipFile(zipped, "w") as zf:
        for name, data in ml_files().items():
            zf.writestr(f"ml-100k/{name}", data)
    _check_movielens(load("movielens:100k", tmp_path / "zipped"))
    from textinterest.datasets import ChecksumMismatchError

    with pytest.raises(ChecksumMismatchError):  # a made-up archive is not the publisher's
        load_dataset("movielens:100k", tmp_path / "zipped")


def test_movielens_missing_lists_every_layout(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("movielens:100k", tmp_path)
    message = str(info.value)
    for expected in ("ml-100k/u.data.gz", "ml-100k/u.data\n", "ml-100k.zip", "files.grouplens.org", "download=True"):
        assert expected in message


def test_movielens_bad_lines(tmp_path, ml_files):
    files = ml_files()
    files["u.data"] += b"5\t1\t7\t880000000\n5\t2\n5\tx\n"
    folder = tmp_path / "movielens" / "ml-100k"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataFormatError) as info:
        load("movielens:100k", tmp_path)
    assert (info.value.line, info.value.field) == (13, "rating") and "u.data" in str(info.value)
    ds = load("movielens:100k", tmp_path, errors="drop")
    assert ds.report.dropped == {"bad_value:rating": 1, "malformed_line": 2}
    assert len(ds.interactions) == 12


def test_movielens_kcore_trims_item_table(tmp_path, ml_files):
    files = ml_files(n_users=3, n_items=4)
    files["u.data"] = b"\n".join(line for line in files["u.data"].split(b"\n") if not line.startswith(b"1\t4")) + b"\n"
    folder = tmp_path / "movielens" / "ml-100k"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    ds = load("movielens:100k", tmp_path, kcore=3)
    assert sorted(ds.items[ITEM_COL]) == ["1", "2", "3"]  # item 4 has only 2 ratings
    assert len(load("movielens:100k", tmp_path).items) == 4


# ---------------------------------------------------------------- summary and report


def test_summary_is_json_ready_and_correct(tiny_home):
    ds = load("amazon:Musical_Instruments", tiny_home)
    summary = dataset_summary(ds)
    text = json.dumps(summary)
    assert json.loads(text) == summary
    assert (summary["n_reviews"], summary["n_users"], summary["n_items"]) == (12, 3, 4)
    assert summary["rating_histogram"] == {"1.0": 3, "2.0": 3, "3.0": 2, "4.0": 2, "5.0": 2, "unrated": 0}
    assert summary["time_min"] == 1300000000 and summary["date_min"] == "2011-03-13T07:06:40Z"
    assert summary["n_empty_text"] == 0 and summary["mean_text_length"] > 10
    assert summary["report"]["n_kept"] == 12 and summary["n_unrated"] == 0


def test_cleaning_report_str_and_dict():
    report = CleaningReport(source="f.json", n_read=10, n_kept=7)
    report.add("dropped", "exact_duplicate", 3)
    report.add("changed", "html_unescaped", 2)
    report.add("changed", "nothing", 0)
    assert report.to_dict() == {
        "source": "f.json",
        "n_read": 10,
        "dropped": {"exact_duplicate": 3},
        "changed": {"html_unescaped": 2},
        "flagged": {},
        "n_kept": 7,
    }
    text = str(report)
    assert "exact_duplicate" in text and "html_unescaped" in text and "kept:   7" in text
    assert report.n_dropped == 3


def test_cli_data_summary(capsys, tiny_home):
    from textinterest.datasets.summary import cmd_data_summary

    args = argparse.Namespace(name="synthetic", json=True, data_home=None, download=False, kcore=None)
    assert cmd_data_summary(args) == 0
    assert json.loads(capsys.readouterr().out)["n_users"] == 400
    args = argparse.Namespace(name="movielens:100k", json=False, data_home=str(tiny_home / "nothing"))
    assert cmd_data_summary(args) == 2
    assert "was not found" in capsys.readouterr().err


def test_load_dataset_downloads_a_registered_file(tmp_path, monkeypatch, write_lines, make_review):
    import hashlib

    from textinterest.datasets import ChecksumMismatchError
    from textinterest.datasets.registry import REGISTRY, RemoteFile

    source = write_lines(
        tmp_path / "mirror" / "young_adult_10000.json.gz", [make_review.goodreads(i) for i in range(5)]
    )
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setitem(REGISTRY, GOODREADS, RemoteFile(GOODREADS, source.as_uri(), sha))
    with pytest.raises(DataNotFoundError, match="download=True"):
        load_dataset("goodreads:young_adult_10000", tmp_path / "home")
    ds = load_dataset("goodreads:young_adult_10000", tmp_path / "home", download=True)
    assert len(ds.interactions) == 5 and (tmp_path / "home" / GOODREADS).read_bytes() == source.read_bytes()
    monkeypatch.setitem(REGISTRY, GOODREADS, RemoteFile(GOODREADS, source.as_uri(), "f" * 64))
    with pytest.raises(ChecksumMismatchError):
        load_dataset("goodreads:young_adult_10000", tmp_path / "other", download=True)
    assert not (tmp_path / "other" / GOODREADS).exists()


def test_empty_kcore_warns_and_summarizes(tiny_home):
    with pytest.warns(UserWarning, match="50-core is empty"):
        ds = load("amazon:Musical_Instruments", tiny_home, kcore=50)
    summary = dataset_summary(ds)
    assert summary["n_reviews"] == 0 and summary["date_min"] is None and ds.report.dropped == {"kcore": 12}
    json.dumps(summary)


# ---------------------------------------------------------------- timestamps and compression


@pytest.mark.parametrize(
    "value, words",
    [
        (1e20, "outside 1990-2100"),
        (10**400, "finite number"),
        (1_300_000_000_000, "milliseconds"),
        (86_400, "outside 1990-2100"),
        (4_200_000_000, "outside 1990-2100"),
    ],
)
def test_amazon_timestamp_out_of_range(tmp_path, write_lines, make_review, value, words):
    r = make_review.amazon2014
    write_lines(tmp_path / MI, [r(0), r(1, unixReviewTime=value), r(2)])
    with pytest.raises(DataFormatError, match=f"line 2, field 'unixReviewTime': .*{words}") as info:
        load("amazon:Musical_Instruments", tmp_path)
    assert info.value.line == 2 and info.value.field == "unixReviewTime"
    ds = load("amazon:Musical_Instruments", tmp_path, errors="drop")
    assert ds.report.dropped["bad_value:unixReviewTime"] == 1 and ds.report.n_read == 3 and len(ds.interactions) == 2


def test_goodreads_date_out_of_range(tmp_path, write_lines, make_review):
    r = make_review.goodreads
    write_lines(tmp_path / GOODREADS, [r(0), r(1, date_added="Thu Jan 01 00:00:00 +0000 1970")])
    with pytest.raises(DataFormatError, match="line 2, field 'date_added': timestamp .*1970.* outside 1990-2100"):
        load("goodreads:young_adult_10000", tmp_path)


def test_random_bytes_named_gz_are_not_a_gzip_file(tmp_path):
    path = tmp_path / MI
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(3, 256)))
    with pytest.raises(DataFormatError, match="not a gzip file") as info:
        load("amazon:Musical_Instruments", tmp_path)
    assert info.value.reason == "not_gzip"


def test_movielens_timestamp_in_milliseconds(tmp_path, ml_files):
    files = ml_files()
    files["u.data"] += b"5\t1\t3\t880000000000\n"
    folder = tmp_path / "movielens" / "ml-100k"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataFormatError, match="milliseconds") as info:
        load("movielens:100k", tmp_path)
    assert (info.value.line, info.value.field) == (13, "timestamp")
    assert load("movielens:100k", tmp_path, errors="drop").report.dropped == {"bad_value:timestamp": 1}
