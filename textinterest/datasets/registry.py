"""Where data files live, where they come from, and how they are checked.

The data home is chosen, in this order, from: the ``data_home`` argument, the environment variable
``TEXTINTEREST_DATA``, the checkout's top-level ``data/`` folder when the package runs from a source
checkout, ``$TEXTINTEREST_CACHE/data``, and ``platformdirs.user_cache_dir("textinterest")/data``.
Inside it, files are laid out as in the registry below (``amazon2014/reviews_<Category>_5.json.gz``, ...).
Nothing is created at import time; a folder is only made when a download writes into it.

Each registered file carries the hash of the file as stored (sha256, or the publisher's md5 for the
MovieLens zip) and, for gzipped files, the sha256 of the decompressed content, so a user who keeps
the plain file (``reviews_Musical_Instruments_5.json``) is checked too. A successful check is
remembered per (path, size, mtime) for the life of the process, so repeated loads are cheap.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textinterest.constants import CACHE_ENV, DATA_ENV
from textinterest.datasets.base import ChecksumMismatchError, DataNotFoundError

__all__ = [
    "RemoteFile",
    "REGISTRY",
    "get_data_home",
    "describe_data_home",
    "candidate_paths",
    "find_local",
    "verify_file",
    "file_hash",
    "fetch_file",
]


@dataclass(frozen=True)
class RemoteFile:
    """One known data file.

    Args:
        relpath: path inside the data home, with "/" separators.
        url: the publisher's URL, or None when there is no official download (obtain it manually).
        sha256: sha256 of the file as stored (None when only ``md5`` is known).
        content_sha256: sha256 of the decompressed content (gzipped files only).
        md5: the publisher's md5 (used when no sha256 is known).
        note: a remark shown in error messages (provenance, how to obtain it).
    """

    relpath: str
    url: str | None
    sha256: str | None
    content_sha256: str | None = None
    md5: str | None = None
    note: str = ""

    @property
    def known_hash(self) -> str | None:
        """The hash in pooch's ``"algorithm:hex"`` form, or None."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        if self.md5:
            return f"md5:{self.md5}"
        return None


_SNAP_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
_AMAZON_2018 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall"
_ML100K_ZIP = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

_ENTRIES: list[RemoteFile] = [
    RemoteFile(
        "amazon2014/reviews_Musical_Instruments_5.json.gz",
        f"{_SNAP_2014}/reviews_Musical_Instruments_5.json.gz",
        "03f9cc27ae13a454cb4ea6cb620fb10546cc1194ef921441d1c5f34addff2748",
        "8e1aaab451ba61484dfe393f53d11886246bc426c7046b180b62352580f68c1d",
        note="Amazon product data 2014, 5-core (He & McAuley); research use only.",
    ),
    RemoteFile(
        "amazon2018/All_Beauty_5.json.gz",
        f"{_AMAZON_2018}/All_Beauty_5.json.gz",
        "4a6b1eb40c4f58328f3f34181a6ef00f8e3423d801128617cc408a83c9bd0027",
        "2216c07d74d92744fefcff3cfe9eac5831634bcc77bfb2a47352f7d51f96cb86",
        note="Amazon Review Data 2018, 5-core (Ni, Li & McAuley); research use only.",
    ),
    RemoteFile(
        "amazon2018/AMAZON_FASHION_5.json.gz",
        f"{_AMAZON_2018}/AMAZON_FASHION_5.json.gz",
        "5c73b65d0a5cc5dcd905b75a87086c37513ff0d023b02b381e729ab8a9541cb6",
        "89d01607b46760c41b2b22314973fac06b18a915977374ba02624dbe78d637ee",
        note="Amazon Review Data 2018, 5-core (Ni, Li & McAuley); research use only.",
    ),
    RemoteFile(
        "goodreads/young_adult_10000.json.gz",
        # Unverified: inferred from the UCSD CSE 258 course's other data links (e.g. .../fa23/cse258-a/
        # data/fantasy_10000.json.gz); the sha256 below still protects a download from this address.
        "https://cseweb.ucsd.edu/classes/fa23/cse258-a/data/young_adult_10000.json.gz",
        "061aca0e1875a8b5f6902904bdfe9e9203e29f72ce18f7f4d39289e5e6b36d2c",
        "319b3051904b7ca2146fd33826b528a97872a2f16b29fb4af75a91defbbd67b6",
        note=(
            "10,000-review course sample of the UCSD Book Graph (Wan & McAuley); the course URL is "
            "inferred and unverified. Full data: https://mengtingwan.github.io/data/goodreads.html"
        ),
    ),
    RemoteFile(
        "yelp/yelp.csv.zip",
        None,  # an unofficial teaching sample: there is no publisher URL for it
        "fc0093d9cdf96e35e1a1b7c3f76297c22959245068c7627ea56bc0891dbd4499",
        "0713f2d5419af7840e2e1e6c6a5675b982c1fd3ef0440d435fbf50c45f8fd546",  # yelp.csv inside the zip
        note=(
            "The 10,000-review Yelp teaching sample (yelp.csv, often found as data/yelp.csv in course "
            "material such as justmarkham/DAT8) has no official download. Obtain yelp.csv under the Yelp "
            "Dataset terms (https://www.yelp.com/dataset) and place it, zipped as yelp.csv.zip or plain "
            "as yelp.csv, in the folder shown."
        ),
    ),
    RemoteFile(
        "movielens/ml-100k.zip",
        _ML100K_ZIP,
        None,
        md5="0e33842e24a9c977be4e0107933c0723",  # published by GroupLens as ml-100k.zip.md5
        note="MovieLens 100K (GroupLens); research use only. Members are checked against the sha256 of each file.",
    ),
]

# MovieLens 100K, each file gzipped on its own: (name, sha256 of .gz, sha256 of the original file)
_ML100K_FILES = [
    (
        "README",
        "21693019b247f91c83f1031686d26a45797921c334abe069202415be7f313b12",
        "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    ),
    (
        "u.data",
        "d5cd19fba4562fe2867bf2964d99d97ec55bce45b150df3763dfa8668cf22f4f",
        "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    ),
    (
        "u.genre",
        "dab299d9a6b6a642d1cdb7302f1d69bd345bd36f25e8e8952cac5e5babe32cb7",
        "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    ),
    (
        "u.info",
        "dd583e8861ee5221eae000ba6ce00f85319a5a94a71a4d104f6b9557f5fdcfd0",
        "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    ),
    (
        "u.item",
        "04adc2d93c4b38f562630ccc81b658ef590e3e3573cb189b1d8167fae0217f93",
        "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    ),
    (
        "u.occupation",
        "98cf18428a06ad7b9b85773770b9f82ac593ebf96e87bbf850baffa34299822f",
        "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    ),
    (
        "u.user",
        "10e0ddab8671ce7f418c092148f3d3e83f57813d63f1874fea439c8ed3d176b2",
        "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    ),
    (
        "u1.base",
        "85bfd60412e52b60b9a7f494b13f892a627eedf8c870716879aa0eadc7709e33",
        "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    ),
    (
        "u1.test",
        "e24ea37f1150f16f8991cb55ae018695991cfeab9df93d5d14e4ce08825e37ad",
        "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    ),
    (
        "u2.base",
        "bca72de4836faf26dc14e456e18abeb30071744ff46fea82ddaf7e546b6928c2",
        "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    ),
    (
        "u2.test",
        "e65f4e005023e6cb59ffd192e027b7d93c6f43339c69122c50521ed106d9883c",
        "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    ),
    (
        "u3.base",
        "93900c1760b514da98dbf39df08b691416acde2d85419693850faf340114d17d",
        "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    ),
    (
        "u3.test",
        "05eab9e3e2fd9ee2346627ed493055bb49ed94febaa849db614abb9940f8eefa",
        "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    ),
    (
        "u4.base",
        "c40781fc0f2fa7805262fc4e50fda8f532058b7383446c5ba8279b6be78b644d",
        "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    ),
    (
        "u4.test",
        "289f2a844b6560351b225d162ab5b6421320de6f5b6ea1573dfd3068a3b8f089",
        "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    ),
    (
        "u5.base",
        "0d6a9fe308465814bc8c66ab8a84971e3a2d5d92090b0c5c430cd2611ed0f904",
        "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    ),
    (
        "u5.test",
        "a76fce16da45f75760f3219e87380ac09849c0ec1be13f76662f88f2c579d26a",
        "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    ),
    (
        "ua.base",
        "bba295f8d3655295a42d4749689d06d40cbb9635dbd6c169fef6fa0f3a7bafe1",
        "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    ),
    (
        "ua.test",
        "6ceff4352c63093cd9354cbd4e52e1b0f0fee25b2b2b55d95d0af0c138f8a557",
        "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    ),
    (
        "ub.base",
        "66ae16480a6cbeb819b1a7761083daab1e25aeb63eddb385ede6d16b138d0cb0",
        "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    ),
    (
        "ub.test",
        "fc227433dd5d679d15f17f9a5eb21d4d33e3f890986d7b1380b8906e36f5aef2",
        "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
    ),
]

for _name, _gz_sha, _raw_sha in _ML100K_FILES:
    _ENTRIES.append(
        RemoteFile(
            f"movielens/ml-100k/{_name}.gz",
            None,  # GroupLens serves only the zip; download=True fetches "movielens/ml-100k.zip"
            _gz_sha,
            _raw_sha,
            note=f"Part of {_ML100K_ZIP} (member ml-100k/{_name}).",
        )
    )

#: Every known file, keyed by its path inside the data home.
REGISTRY: dict[str, RemoteFile] = {entry.relpath: entry for entry in _ENTRIES}

# digests of files already hashed: (resolved path, size, mtime_ns, algorithm) -> hex digest
_HASH_CACHE: dict[tuple[str, int, int, str], str] = {}


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder that holds (or will hold) the data files.

    Args:
        data_home: explicit folder; when None, ``$TEXTINTEREST_DATA``, then the checkout's ``data/``
            folder (only when the package runs from a source checkout), then ``$TEXTINTEREST_CACHE/data``,
            then ``platformdirs.user_cache_dir("textinterest")/data``. The folder is not created.

    Returns:
        The folder, with ``~`` expanded.
    """
    return _resolve_data_home(data_home)[0]


def describe_data_home(data_home: str | os.PathLike | None = None) -> str:
    """A phrase saying which folder is the data home and why (for messages)."""
    path, origin = _resolve_data_home(data_home)
    return f"{path} ({origin})"


def _resolve_data_home(data_home: str | os.PathLike | None) -> tuple[Path, str]:
    if data_home is not None:
        return Path(data_home).expanduser(), "from the data_home argument"
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser(), f"from ${DATA_ENV}"
    checkout = _checkout_data_dir()
    if checkout is not None:
        return checkout, f"the checkout's data folder; ${DATA_ENV} is not set"
    cache = os.environ.get(CACHE_ENV)
    if cache:
        return Path(cache).expanduser() / "data", f"from ${CACHE_ENV}/data; ${DATA_ENV} is not set"
    import platformdirs  # imported here: nothing is touched at import time

    return (
        Path(platformdirs.user_cache_dir("textinterest")) / "data",
        f"the default user cache folder; ${DATA_ENV} is not set",
    )


def _checkout_data_dir() -> Path | None:
    """``<checkout>/data`` when this package is imported from a source checkout (not an installed copy)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / ".git").exists() and (root / "data").is_dir():
        return root / "data"
    return None


def _normalize_key(key_or_relpath: str) -> str:
    key = str(key_or_relpath).replace("\\", "/").strip("/")
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a relative data path: {key_or_relpath!r}")
    return key


def candidate_paths(key_or_relpath: str, data_home: str | os.PathLike | None = None) -> list[Path]:
    """Where a file may be found: as stored (e.g. ``x.json.gz``), then decompressed (``x.json``).

    Args:
        key_or_relpath: registry key or any path relative to the data home.
        data_home: see ``get_data_home``.
    """
    key = _normalize_key(key_or_relpath)
    path = get_data_home(data_home) / key
    paths = [path]
    if key.endswith(".gz"):
        paths.append(path.with_suffix(""))
    elif key.endswith(".zip"):
        paths.append(path.with_suffix(""))  # e.g. yelp.csv for yelp.csv.zip
    return paths


def find_local(key_or_relpath: str, data_home: str | os.PathLike | None = None) -> Path | None:
    """The first existing file among ``candidate_paths``, or None."""
    for path in candidate_paths(key_or_relpath, data_home):
        if path.is_file():
            return path
    return None


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, remembered per (path, size, mtime) for the life of the process."""
    path = Path(path)
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, algorithm)
    digest = _HASH_CACHE.get(cache_key)
    if digest is None:
        h = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        _HASH_CACHE[cache_key] = digest
    return digest


def verify_file(path: str | os.PathLike, entry: RemoteFile) -> None:
    """Check a local file against its registry entry; raise ``ChecksumMismatchError`` on a mismatch.

    A file stored as in the registry is checked against ``sha256`` (or ``md5``); a decompressed copy
    (the registry path without ``.gz``) against ``content_sha256``. A form with no known hash passes.

    Args:
        path: the local file.
        entry: its registry entry.
    """
    path = Path(path)
    stored_form = path.name == Path(entry.relpath).name
    if stored_form:
        algorithm, expected = ("sha256", entry.sha256) if entry.sha256 else ("md5", entry.md5)
    else:
        algorithm, expected = "sha256", entry.content_sha256
    if not expected:
        return
    actual = file_hash(path, algorithm)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path}: {algorithm} is {actual}, but the registry expects {expected} for {entry.relpath}. "
            "The file is truncated, corrupted or a different version. Delete it and download it again "
            "(download=True, or --download on the command line), or use it anyway with verify=False "
            "(--no-verify on the command line)."
        )


def not_found_message(
    entries_or_keys: list[str],
    data_home: str | os.PathLike | None,
    *,
    what: str,
    looked: list[Path] | None = None,
    extra: str = "",
) -> str:
    """The message of a ``DataNotFoundError``: the file, every place looked, the URL and how to get it."""
    looked = looked if looked is not None else [p for k in entries_or_keys for p in candidate_paths(k, data_home)]
    lines = [f"{what} was not found. Data home: {describe_data_home(data_home)}.", "Looked for:"]
    lines.extend(f"  {p}" for p in looked)
    for key in entries_or_keys:
        entry = REGISTRY.get(_normalize_key(key))
        if entry is None:
            continue
        if entry.url:
            lines.append(
                f"Publisher URL: {entry.url}. Pass download=True (or --download on the command line) to "
                f"fetch it into {get_data_home(data_home) / entry.relpath}, or place the file there yourself."
            )
        if entry.note:
            lines.append(entry.note)
    lines.append(
        f"Point ${DATA_ENV} (or the data_home argument) at another folder laid out the same way to use existing files."
    )
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def _file_url_downloader(url: str, output_file: str, pooch: object) -> None:
    """Copy a ``file://`` URL (a local mirror) to ``output_file``; pooch then checks the hash and moves it."""
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname

    source = Path(url2pathname(unquote(urlparse(url).path)))
    if not source.is_file():
        raise DataNotFoundError(f"{url}: no such file")
    shutil.copyfile(source, output_file)


def fetch_file(
    key_or_relpath: str,
    data_home: str | os.PathLike | None = None,
    download: bool = False,
    *,
    verify: bool = True,
    downloader: Callable[[str, str, object], None] | None = None,
) -> Path:
    """Return the local path of a data file, checking its hash, downloading it when asked.

    Args:
        key_or_relpath: registry key (path inside the data home), e.g.
            ``"amazon2014/reviews_Musical_Instruments_5.json.gz"``. Paths not in the registry are
            returned when present (without a hash check) and reported missing otherwise.
        data_home: see ``get_data_home``.
        download: fetch a missing file from the publisher's URL (with pooch: written to a temporary
            file, checked against the registry hash, then moved into place).
        verify: check the hash of a file already present (cached per path, size and mtime).
        downloader: a pooch-style downloader ``f(url, output_file, pooch)``; default: pooch's for
            http(s)/ftp and a local copy for ``file://`` URLs.

    Returns:
        Path of the file (the stored form, or its decompressed copy when only that exists).

    Raises:
        DataNotFoundError: missing and ``download`` is False, or no URL is known.
        ChecksumMismatchError: present or downloaded, but its hash differs from the registry's.
    """
    key = _normalize_key(key_or_relpath)
    entry = REGISTRY.get(key)
    local = find_local(key, data_home)
    if local is not None:
        if verify and entry is not None:
            verify_file(local, entry)
        return local
    if not download:
        raise DataNotFoundError(not_found_message([key], data_home, what=f"Data file {key!r}"))
    if entry is None or not entry.url:
        reason = "it is not in the registry, so no URL or hash is known" if entry is None else "it has no download URL"
        raise DataNotFoundError(
            not_found_message(
                [key], data_home, what=f"Data file {key!r}", extra=f"download=True cannot fetch it: {reason}."
            )
        )
    import pooch  # imported here: only downloads need it

    target = get_data_home(data_home) / key
    if downloader is None and entry.url.startswith("file://"):
        downloader = _file_url_downloader
    try:
        fetched = pooch.retrieve(
            entry.url,
            known_hash=entry.known_hash,
            fname=target.name,
            path=target.parent,
            downloader=downloader,
            progressbar=False,
        )
    except ValueError as exc:  # pooch's hash mismatch; the temporary file is already deleted
        if "hash" in str(exc).lower():
            raise ChecksumMismatchError(
                f"Downloaded {entry.url} but its hash differs from the registry's ({entry.known_hash}); "
                f"nothing was written to {target}. The publisher may have changed the file. Details: {exc}"
            ) from exc
        raise
    return Path(fetched)
