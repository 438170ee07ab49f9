"""Column names and defaults shared by every module.

Every DataFrame that flows through textinterest uses these names, so a loader, a split,
a baseline and a model agree on what a column means without passing names around.
"""

from __future__ import annotations

# Canonical interaction table
USER_COL = "user_id"  # str
ITEM_COL = "item_id"  # str
RATING_COL = "rating"  # float; NaN means "no rating given" (e.g. Goodreads rating 0)
TIME_COL = "timestamp"  # int, seconds since the epoch, UTC
TEXT_COL = "text"  # str, cleaned review text ("" when the source had none)
SUMMARY_COL = "summary"  # str, review title/summary ("" when absent)
ORDER_COL = "source_order"  # int, 0-based position of the record in its source file (tie-breaker)

CANONICAL_COLUMNS = (USER_COL, ITEM_COL, RATING_COL, TIME_COL, TEXT_COL, SUMMARY_COL, ORDER_COL)

# Item text table
ITEM_TEXT_COL = "item_text"  # str, a description of the item (metadata), when the source has one

# Predictions
PREDICTION_COL = "prediction"

# Defaults
SEED = 42
RANKING_KS = (5, 10, 20)
RATING_SCALE = (1.0, 5.0)

# Environment variables
DATA_ENV = "TEXTINTEREST_DATA"  # folder laid out like ../shared/data
CACHE_ENV = "TEXTINTEREST_CACHE"  # where embeddings and downloads are cached

SPLITS = ("leave-last-out", "temporal", "random")
