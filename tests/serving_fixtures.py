"""The saved synthetic model of :mod:`serving_world` and an HTTP client over it, as module-scoped fixtures.

Test files import them by name (``from serving_fixtures import client, model``); pytest finds them there.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient
from serving_world import root, trained

from textinterest.apps.serve import create_app
from textinterest.models.interest import InterestRecommender


@pytest.fixture(scope="module")
def model():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTINTEREST_CACHE", str(root() / "cache"))
        yield InterestRecommender.load(trained()[2])


@pytest.fixture(scope="module")
def client(model):
    return TestClient(create_app(model), raise_server_exceptions=False)
