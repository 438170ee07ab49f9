"""Frozen collaborative-filtering bases for the interest model's residual formulation.

With ``InterestConfig.residual_base="biases"`` the interest model predicts a rating as

    r(u, i) = mu + b_u + b_i  +  residual(u, i)
              \\_ frozen base _/

where the base is fitted first, in closed form, and never trained again, and the residual (the
model's own CF term and its text term) is pulled toward 0 by ``residual_l2``. The base is the
baseline predictor of Koren (2010), fitted by alternating least squares as Surprise's
``BaselineOnly`` does (same defaults), so the model starts level with that baseline and only has
to learn what the biases miss.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RESIDUAL_BASES", "fit_biases"]

RESIDUAL_BASES = ("none", "biases")


def fit_biases(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    reg_user: float = 15.0,
    reg_item: float = 10.0,
    epochs: int = 10,
) -> tuple[float, np.ndarray, np.ndarray]:
    """User and item rating biases by alternating least squares.

    Args:
        users: (R,) user positions in 0..n_users-1.
        items: (R,) item positions in 0..n_items-1.
        ratings: (R,) finite ratings.
        n_users: number of users.
        n_items: number of items.
        reg_user: shrinkage of the user biases.
        reg_item: shrinkage of the item biases.
        epochs: ALS sweeps (item biases, then user biases).

    Returns:
        ``(mu, b_user (n_users,), b_item (n_items,))``; users / items without ratings get 0.

    Raises:
        ValueError: shapes disagree, positions are out of range, a rating is not finite, or no ratings.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float64)
    if not users.shape == items.shape == ratings.shape or users.ndim != 1:
        raise ValueError(
            f"users, items, ratings must be 1-D of one length; got {users.shape}, {items.shape}, {ratings.shape}"
        )
    if len(ratings) == 0:
        raise ValueError("fit_biases needs at least one rating")
    if not np.isfinite(ratings).all():
        raise ValueError("fit_biases: ratings contain NaN/inf (drop unrated rows first)")
    if users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"positions out of range: users in [0, {n_users}), items in [0, {n_items})")
    mu = float(ratings.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    n_u = np.bincount(users, minlength=n_users)
    n_i = np.bincount(items, minlength=n_items)
    for _ in range(epochs):
        bi = np.bincount(items, ratings - mu - bu[users], minlength=n_items) / (reg_item + n_i)
        bu = np.bincount(users, ratings - mu - bi[items], minlength=n_users) / (reg_user + n_u)
    return mu, bu, bi
