"""Data home resolution, the file registry, hash checks and downloads (no network: file:// and fake downloaders)."""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from textinterest.datasets import registry
from textinterest.datasets.base import ChecksumMismatchError, DataNotFoundError
from textinterest.datasets.registry import REGISTRY, RemoteFile, fetch_file, get_data_home


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_entry(monkeypatch, tmp_path):
    """Register 'fake/thing.json.gz' whose publisher copy lives at tmp_path/publisher/thing.json.gz."""
    content = b'{"a": 1}\n'
    gz = gzip.compress(content, mtime=0)
    source = tmp_path / "publisher" / "thing.json.gz"
    source.parent.mkdir()
    source.write_bytes(gz)

    def register(sha256: str | None = _sha(gz), url: str | None = source.as_uri()) -> RemoteFile:
        entry = RemoteFile("fake/thing.json.gz", url, sha256, _sha(content), note="A made-up file.")
        monkeypatch.setitem(REGISTRY, entry.relpath, entry)
        return entry

    register.gz = gz
    register.content = content
    return register


# ---------------------------------------------------------------- data home


def test_data_home_argument_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTINTEREST_DATA", str(tmp_path / "env"))
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"


def test_data_home_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTINTEREST_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"


def test_data_home_from_cache_env_then_user_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("TEXTINTEREST_DATA", raising=False)
    monkeypatch.setattr(registry, "_checkout_data_dir", lambda: None)  # as in an installed copy
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path / "cache"))
    assert get_data_home() == tmp_path / "cache" / "data"
    monkeypatch.delenv("TEXTINTEREST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    home = get_data_home()
    assert home.parts[-2:] == ("textinterest", "data")
    assert not home.exists()  # resolving creates nothing


def test_data_home_in_a_checkout_is_its_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("TEXTINTEREST_DATA", raising=False)
    monkeypatch.setenv("TEXTINTEREST_CACHE", str(tmp_path / "cache"))
    checkout = registry._checkout_data_dir()
    if checkout is None:
        pytest.skip("the package is not imported from a source checkout")
    assert get_data_home() == checkout
    assert (checkout.parent / "pyproject.toml").is_file() and (checkout / "README.md").is_file()
    monkeypatch.setenv("TEXTINTEREST_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"  # the variable still wins


def test_import_is_light_and_touches_nothing(tmp_path):
    code = (
        "import sys, textinterest.datasets as d; "
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules); "
        "assert callable(d.load_dataset)"
    )
    env = {"PATH": "", "TEXTINTEREST_DATA": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path(__file__).parents[1])
    assert not (tmp_path / "nowhere").exists()


# ---------------------------------------------------------------- the table


def test_registry_table_is_consistent():
    hexes = re.compile(r"[0-9a-f]{64}")
    assert "amazon2014/reviews_Musical_Instruments_5.json.gz" in REGISTRY
    assert len([k for k in REGISTRY if k.startswith("movielens/ml-100k/")]) == 21
    for key, entry in REGISTRY.items():
        assert key == entry.relpath and not key.startswith("/")
        assert entry.known_hash is not None
        if entry.sha256:
            assert hexes.fullmatch(entry.sha256), key
        if key.endswith(".gz"):
            assert entry.content_sha256 and hexes.fullmatch(entry.content_sha256), key
    assert REGISTRY["yelp/yelp.csv.zip"].url is None
    assert "cse258" in REGISTRY["goodreads/young_adult_10000.json.gz"].url
    assert REGISTRY["movielens/ml-100k.zip"].known_hash == "md5:0e33842e24a9c977be4e0107933c0723"


# ---------------------------------------------------------------- local files


def test_present_file_is_verified_and_returned(fake_entry, tmp_path):
    fake_entry()
    target = tmp_path / "home" / "fake" / "thing.json.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(fake_entry.gz)
    assert fetch_file("fake/thing.json.gz", tmp_path / "home") == target


def test_corrupt_file_raises_unless_verify_false(fake_entry, tmp_path):
    fake_entry()
    target = tmp_path / "home" / "fake" / "thing.json.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(fake_entry.gz[:-3])
    with pytest.raises(ChecksumMismatchError, match=r"thing\.json\.gz.*download=True.*verify=False"):
        fetch_file("fake/thing.json.gz", tmp_path / "home")
    assert fetch_file("fake/thing.json.gz", tmp_path / "home", verify=False) == target


def test_decompressed_copy_is_accepted_and_checked_by_content_hash(fake_entry, tmp_path):
    fake_entry()
    plain = tmp_path / "home" / "fake" / "thing.json"
    plain.parent.mkdir(parents=True)
    plain.write_bytes(fake_entry.content)
    assert fetch_file("fake/thing.json.gz", tmp_path / "home") == plain
    plain.write_bytes(b'{"a": 2}\n')
    with pytest.raises(ChecksumMismatchError):
        fetch_file("fake/thing.json.gz", tmp_path / "home")


def test_hash_is_cached_per_path_size_and_mtime(fake_entry, tmp_path, monkeypatch):
    fake_entry()
    target = tmp_path / "home" / "fake" / "thing.json.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(fake_entry.gz)
    calls = []
    real_new = hashlib.new
    monkeypatch.setattr(registry.hashlib, "new", lambda name: calls.append(name) or real_new(name))
    for _ in range(3):
        fetch_file("fake/thing.json.gz", tmp_path / "home")
    assert len(calls) == 1
    target.write_bytes(b"x" * len(fake_entry.gz))  # same size, new mtime and content
    import os

    os.utime(target, ns=(1, 1))
    with pytest.raises(ChecksumMismatchError):
        fetch_file("fake/thing.json.gz", tmp_path / "home")
    assert len(calls) == 2


def test_missing_file_message_names_file_places_url_and_how(fake_entry, tmp_path):
    entry = fake_entry()
    with pytest.raises(DataNotFoundError) as info:
        fetch_file("fake/thing.json.gz", tmp_path / "home")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "fake/thing.json.gz" in message
    assert str(tmp_path / "home" / "fake" / "thing.json.gz") in message
    assert str(tmp_path / "home" / "fake" / "thing.json") in message  # the decompressed form too
    assert entry.url in message and "download=True" in message and "--download" in message
    assert "data_home argument" in message


def test_unregistered_path_is_returned_when_present_and_missing_otherwise(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "y.txt").write_text("hello")
    assert fetch_file("x/y.txt", tmp_path) == tmp_path / "x" / "y.txt"
    with pytest.raises(DataNotFoundError, match="not in the registry"):
        fetch_file("x/z.txt", tmp_path, download=True)


def test_relative_paths_only(tmp_path):
    with pytest.raises(ValueError):
        fetch_file("../etc/passwd", tmp_path)


# ---------------------------------------------------------------- downloads (no network)


def test_download_from_file_url_with_right_hash(fake_entry, tmp_path):
    fake_entry()
    path = fetch_file("fake/thing.json.gz", tmp_path / "home", download=True)
    assert path == tmp_path / "home" / "fake" / "thing.json.gz"
    assert path.read_bytes() == fake_entry.gz
    assert fetch_file("fake/thing.json.gz", tmp_path / "home") == path  # now local and verified


def test_download_with_wrong_hash_raises_and_leaves_nothing(fake_entry, tmp_path):
    fake_entry(sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError, match="hash"):
        fetch_file("fake/thing.json.gz", tmp_path / "home", download=True)
    folder = tmp_path / "home" / "fake"
    assert not (folder / "thing.json.gz").exists()
    assert not folder.exists() or list(folder.iterdir()) == []  # no temporary file left behind


def test_download_uses_a_custom_downloader(fake_entry, tmp_path):
    fake_entry(url="https://example.invalid/thing.json.gz")
    seen = []

    def downloader(url, output_file, pooch):
        seen.append(url)
        Path(output_file).write_bytes(fake_entry.gz)

    path = fetch_file("fake/thing.json.gz", tmp_path / "home", download=True, downloader=downloader)
    assert seen == ["https://example.invalid/thing.json.gz"]
    assert path.read_bytes() == fake_entry.gz


def test_download_without_url_explains_manual_step(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        fetch_file("yelp/yelp.csv.zip", tmp_path, download=True)
    message = str(info.value)
    assert "no download URL" in message and "yelp.com/dataset" in message
    assert str(tmp_path / "yelp" / "yelp.csv.zip") in message
