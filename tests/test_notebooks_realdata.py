"""Notebooks on real data: the data tour and the CF baselines on Amazon Musical Instruments.

nbval runs every notebook on its defaults (the synthetic world); this runs two of them through
``reproduce`` with ``--dataset amazon:Musical_Instruments``, as a user reproducing a report would.
"""

from __future__ import annotations

import json

import pytest

from textinterest.apps.reporting import reproduce

pytestmark = pytest.mark.realdata


def test_reproduce_data_tour_and_baselines_on_musical_instruments(shared_data, tmp_path):
    status = reproduce(profile="smoke", dataset="amazon:Musical_Instruments", output=tmp_path, only=["00", "03"])
    assert status == 0, (tmp_path / "smoke" / "index.md").read_text()
    tour = json.loads((tmp_path / "smoke" / "metrics" / "00_data_tour.json").read_text())["metrics"]
    assert (tour["n_reviews"], tour["n_users"], tour["n_items"]) == (10_261, 1_429, 900)
    # 631 of 1,429 users wrote their last two reviews on the same day
    assert tour["share_users_last_two_tied"] == pytest.approx(631 / 1429)
    index = (tmp_path / "smoke" / "index.md").read_text()
    assert "03_cf_baselines" in index and "amazon:Musical_Instruments" in index
