"""Cleaning shared by every loader, with every drop and change counted in a ``CleaningReport``.

Order of the steps (``finalize``):

1. **Exact duplicates** (``dropped["exact_duplicate"]``): records equal in every field the loader
   kept (before any text cleaning); the first occurrence in the file stays.
2. **One review per (user, item)** (``dropped["duplicate_user_item"]``): the latest by
   (timestamp, source_order) stays, so on a timestamp tie the later line of the file wins.
2b. **Copied reviews** (optional, ``dropped["copied_review"]``): rows of one user with the same
   non-empty text and the same timestamp under different item ids (in the Amazon 2018 files one
   review is repeated under every sibling variant of a product); the first line of the file stays.
   Without this step a copy can sit in train while its twin is the test row.
3. **k-core** (optional, ``dropped["kcore"]``): users and items with fewer than k interactions
   (rated or not) are removed, repeatedly, until every remaining user and item has at least k.
4. **Text cleaning** of the kept rows, in the text columns (text, summary and e.g. reviewer name);
   a row is counted once per kind of change, whichever of its text columns changed:
   - ``changed["html_unescaped"]``: HTML entities (``&#34;``, ``&amp;``, ...) decoded once
     (``html.unescape``); unknown ones such as ``&M;`` stay as written;
   - ``changed["control_chars_stripped"]``: control characters removed (C0 except tab, newline,
     carriage return, vertical tab and form feed; DEL; C1). They are deleted, not replaced by a
     space: in the Amazon 2014 files ``\\x1a`` stands for a character lost inside a word;
   - ``changed["whitespace_normalized"]``: line ends become ``\\n``; any other run of whitespace
     (tabs, non-breaking spaces, repeated spaces) becomes one space; spaces around a newline are
     removed; three or more newlines become two; leading and trailing whitespace is removed.
     Newlines are kept: they are paragraph breaks, and tokenizers treat them as spaces anyway.
5. **Flags** (kept rows, not modified): ``flagged["empty_text"]`` (text is ""; such rows are kept, since
   rating models can use them) and ``flagged["missing:<field>"]`` (an optional source field was absent).

The result is in source order (sorted by ``source_order``) with index 0..n-1.
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from textinterest.constants import ITEM_COL, ORDER_COL, TEXT_COL, TIME_COL, USER_COL
from textinterest.datasets.base import CleaningReport
from textinterest.datasets.parsing import MISSING_PREFIX

_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> tuple[str, bool, bool, bool]:
    """Clean one text (see the module docstring).

    Args:
        text: the raw text.

    Returns:
        (cleaned text, HTML entities decoded?, control characters removed?, whitespace changed?)
    """
    unescaped = stripped = False
    if "&" in text:
        new = html.unescape(text)
        unescaped = new != text
        text = new
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        stripped = True
    new = text
    if "\r" in new:
        new = new.replace("\r\n", "\n").replace("\r", "\n")
    new = _SPACES.sub(" ", new)
    if "\n" in new:
        new = _MANY_NEWLINES.sub("\n\n", _SPACE_AROUND_NEWLINE.sub("\n", new))
    new = new.strip()
    return new, unescaped, stripped, new != text


def clean_text_columns(df: pd.DataFrame, columns: Sequence[str], report: CleaningReport) -> pd.DataFrame:
    """Clean the given text columns and count changed rows in ``report.changed``.

    Args:
        df: the table (not modified).
        columns: text columns to clean; those absent from ``df`` are skipped.
        report: receives ``html_unescaped``, ``control_chars_stripped``, ``whitespace_normalized``.

    Returns:
        A new DataFrame with the cleaned columns.
    """
    n = len(df)
    any_html = [False] * n
    any_ctrl = [False] * n
    any_ws = [False] * n
    out = {}
    for column in columns:
        if column not in df.columns:
            continue
        cleaned = []
        for i, value in enumerate(df[column].tolist()):
            text, h, c, w = clean_text(value)
            cleaned.append(text)
            any_html[i] |= h
            any_ctrl[i] |= c
            any_ws[i] |= w
        out[column] = cleaned
    report.add("changed", "html_unescaped", sum(any_html))
    report.add("changed", "control_chars_stripped", sum(any_ctrl))
    report.add("changed", "whitespace_normalized", sum(any_ws))
    if not out:
        return df
    return df.assign(**{c: pd.Series(v, index=df.index, dtype="str") for c, v in out.items()})


def drop_exact_duplicates(df: pd.DataFrame, report: CleaningReport) -> pd.DataFrame:
    """Drop records equal in every column but ``source_order``; keep the first; count ``exact_duplicate``.

    Only rows that share (user, item, timestamp) with another row can be exact duplicates, so the
    comparison of every column (long review texts included) runs on those rows alone.
    """
    subset = [c for c in df.columns if c != ORDER_COL]
    keys = [c for c in (USER_COL, ITEM_COL, TIME_COL) if c in subset]
    duplicated = np.zeros(len(df), bool)
    candidates = df.duplicated(subset=keys, keep=False).to_numpy() if keys else np.ones(len(df), bool)
    if candidates.any():
        duplicated[candidates] = df.loc[candidates].duplicated(subset=subset, keep="first").to_numpy()
    report.add("dropped", "exact_duplicate", int(duplicated.sum()))
    return df.loc[~duplicated]


def keep_latest_per_user_item(df: pd.DataFrame, report: CleaningReport) -> pd.DataFrame:
    """Keep one row per (user, item): the latest by (timestamp, source_order); count ``duplicate_user_item``."""
    if not len(df):
        report.add("dropped", "duplicate_user_item", 0)
        return df
    # integer codes sorted with numpy: the same order as sorting the frame, without moving its text columns
    user = pd.factorize(df[USER_COL])[0]  # a missing id is code -1, one group, as duplicated() treats it
    item = pd.factorize(df[ITEM_COL])[0]
    time = pd.to_numeric(df[TIME_COL], errors="coerce").to_numpy(dtype=np.float64)  # NaN sorts last, as in pandas
    order = np.lexsort((df[ORDER_COL].to_numpy(), time, item, user))
    same_as_next = (user[order][1:] == user[order][:-1]) & (item[order][1:] == item[order][:-1])
    dropped = order[:-1][same_as_next]  # every row of a (user, item) group but its last
    report.add("dropped", "duplicate_user_item", len(dropped))
    if not len(dropped):
        return df
    keep = np.ones(len(df), bool)
    keep[dropped] = False
    return df.loc[keep]


def drop_copied_reviews(df: pd.DataFrame, report: CleaningReport) -> pd.DataFrame:
    """Keep one row per (user, non-empty text, timestamp): the first in source order; count ``copied_review``."""
    if TEXT_COL not in df.columns or not len(df):
        report.add("dropped", "copied_review", 0)
        return df
    ordered = df.sort_values(ORDER_COL, kind="mergesort")
    has_text = ordered[TEXT_COL].fillna("").astype(str).str.strip() != ""
    copied = has_text & ordered.duplicated(subset=[USER_COL, TEXT_COL, TIME_COL], keep="first")
    n = int(copied.sum())
    report.add("dropped", "copied_review", n)
    if n == 0:
        return df
    return df.loc[df.index.difference(ordered.index[copied.to_numpy()])]


def kcore_filter(df: pd.DataFrame, k: int, report: CleaningReport | None = None) -> pd.DataFrame:
    """Keep the k-core: repeatedly drop users and items with fewer than ``k`` rows until none is left.

    Args:
        df: interactions (every row counts, rated or not).
        k: minimum number of interactions per user and per item (>= 1).
        report: when given, receives ``dropped["kcore"]``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"kcore must be a positive integer or None, got {k!r}")
    n_before = len(df)
    while len(df):
        user_n = df.groupby(USER_COL, sort=False)[USER_COL].transform("size")
        item_n = df.groupby(ITEM_COL, sort=False)[ITEM_COL].transform("size")
        keep = (user_n >= k) & (item_n >= k)
        if bool(keep.all()):
            break
        df = df.loc[keep]
    if report is not None:
        report.add("dropped", "kcore", n_before - len(df))
    return df


def finalize(
    df: pd.DataFrame,
    report: CleaningReport,
    *,
    kcore: int | None = None,
    text_columns: Sequence[str] = (TEXT_COL,),
    flag_empty_text: bool = True,
    drop_copies: bool = False,
) -> pd.DataFrame:
    """Run every cleaning step (see the module docstring) and set ``report.n_kept``.

    Args:
        df: parsed interactions with ``source_order`` and optional ``"_missing:<field>"`` columns.
        report: the report to fill.
        kcore: when set, keep only the k-core.
        text_columns: columns cleaned as text.
        flag_empty_text: count rows whose text is empty in ``report.flagged["empty_text"]``.
        drop_copies: drop copied reviews (step 2b).

    Returns:
        The cleaned interactions, in source order, index 0..n-1.
    """
    df = drop_exact_duplicates(df, report)
    df = keep_latest_per_user_item(df, report)
    if drop_copies:
        df = drop_copied_reviews(df, report)
    if kcore is not None:
        df = kcore_filter(df, kcore, report)
        if len(df) == 0:
            warnings.warn(f"{report.source}: the {kcore}-core is empty: no rows are left", UserWarning, stacklevel=3)
    df = clean_text_columns(df, text_columns, report)
    if flag_empty_text and TEXT_COL in df.columns:
        report.add("flagged", "empty_text", int((df[TEXT_COL] == "").sum()))
    helper_columns = [c for c in df.columns if c.startswith(MISSING_PREFIX)]
    for column in helper_columns:
        report.add("flagged", "missing:" + column[len(MISSING_PREFIX) :], int(df[column].sum()))
    df = df.drop(columns=helper_columns).sort_values(ORDER_COL, kind="mergesort").reset_index(drop=True)
    report.n_kept = len(df)
    return df
