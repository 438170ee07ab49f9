"""Colab works: one repository address, the same install cell everywhere, and a simulated Colab run.

The address lives in ``[project.urls] Repository`` of ``pyproject.toml``. Every notebook's Colab badge
and install cell must use it. A fork changes it there and then rewrites the notebooks with::

    python tests/test_colab.py --sync

The simulation builds a fresh virtual environment on top of the project's installed packages (linked,
not copied, so nothing is downloaded), without textinterest and with a stand-in ``google.colab``
module imported at start-up as on Colab; it then runs notebook 00 in a kernel of that environment,
whose first cell installs the package from this checkout as a git URL (``git+file://``, the
committed HEAD) before the rest of the notebook runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
ALL_NOTEBOOKS = NOTEBOOKS + sorted((NOTEBOOKS_DIR / "solutions").glob("*.ipynb"))
PLACEHOLDERS = re.compile(
    r"your[-_ ]?(user(name)?|org|account|fork|name)|<owner>|<user>|OWNER/REPO|example\.(com|org)", re.IGNORECASE
)
REPOSITORY_LINE = 'REPOSITORY = "{url}"  # [project.urls] Repository in pyproject.toml'
INSTALL_LINE = '    %pip install -q "textinterest @ git+{REPOSITORY}"'


def repository_url() -> str:
    """``[project.urls] Repository`` from pyproject.toml (https://github.com/<owner>/<name>)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the one line
        section = (ROOT / "pyproject.toml").read_text().split("[project.urls]", 1)[1].split("\n[", 1)[0]
        url = re.search(r'^Repository\s*=\s*"([^"]*)"', section, re.MULTILINE).group(1)
    else:
        with open(ROOT / "pyproject.toml", "rb") as f:
            url = tomllib.load(f)["project"]["urls"]["Repository"]
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(
            f"pyproject.toml [project.urls] Repository must be https://github.com/<owner>/<name>, got {url!r}"
        )
    return url


def badge_link(url: str, notebook: Path) -> str:
    """The Colab link that opens ``notebook`` from the repository at ``url``."""
    slug = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{notebook.name}"


def _install_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_install_cell_and_badge_use_the_repository_from_pyproject(path):
    url = repository_url()
    nb = nbformat.read(path, as_version=4)
    cell = _install_cell(nb).source.splitlines()
    assert REPOSITORY_LINE.format(url=url) in cell, (
        f"{path.name}: the install cell must set {REPOSITORY_LINE.format(url=url)!r}"
    )
    assert INSTALL_LINE in cell, f"{path.name}: the install cell must run {INSTALL_LINE.strip()!r}"
    assert cell.index(INSTALL_LINE) > cell.index(
        'if "google.colab" in sys.modules:  # on Colab only: install textinterest '
        "(Colab's torch and numpy stay as they are)"
    )
    assert f"({badge_link(url, path)})" in nb.cells[0].source, (
        f"{path.name}: the Colab badge must open this notebook from {url}"
    )


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_no_placeholder_or_foreign_repository_address(path):
    text = path.read_text(encoding="utf-8")
    assert not PLACEHOLDERS.search(text), f"{path.name}: placeholder address {PLACEHOLDERS.search(text).group(0)!r}"
    slug = repository_url().removeprefix("https://github.com/")
    for found in re.findall(r"(?:github\.com|colab\.research\.google\.com/github)/([\w.-]+/[\w.-]+)", text):
        assert found == slug, f"{path.name}: names repository {found!r}, pyproject.toml says {slug!r}"


def test_a_fork_can_sync_its_address(tmp_path):
    """``sync`` rewrites badge and install cell to another address, and back."""
    copy = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], copy)
    fork = "https://github.com/someone/textinterest-fork"
    assert sync([copy], fork) == [copy]
    nb = nbformat.read(copy, as_version=4)
    assert REPOSITORY_LINE.format(url=fork) in _install_cell(nb).source
    assert badge_link(fork, copy) in nb.cells[0].source and repository_url() not in copy.read_text()
    assert sync([copy], repository_url()) == [copy] and copy.read_bytes() == NOTEBOOKS[0].read_bytes()


def sync(paths: list[Path], url: str) -> list[Path]:
    """Point the badges and install cells of ``paths`` at ``url``; return the notebooks changed."""
    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cell = _install_cell(nb)
        new_cell = re.sub(r'^REPOSITORY = "[^"]*"', f'REPOSITORY = "{url}"', cell.source, flags=re.MULTILINE)
        slug = url.removeprefix("https://github.com/")
        new_badge = re.sub(
            r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/",
            f"colab.research.google.com/github/{slug}/",
            nb.cells[0].source,
        )
        if (new_cell, new_badge) != (cell.source, nb.cells[0].source):
            cell.source, nb.cells[0].source = new_cell, new_badge
            nbformat.write(nb, path)
            changed.append(path)
    return changed


# ------------------------------------------------------------------------------------- Colab simulation

FAKE_COLAB = (
    '"""Stand-in for the module Colab imports in every runtime (tests only)."""\n\nIN_COLAB_SIMULATION = True\n'
)


def _colab_like_venv(venv: Path) -> Path:
    """A venv that sees the project's packages except textinterest, with google.colab imported at start-up."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    project_site = Path(sysconfig.get_paths()["purelib"])
    for entry in project_site.iterdir():
        name = entry.name.lower()
        if name.startswith(("textinterest", "__editable__", "_textinterest", "google", "__pycache__")):
            continue
        (site / entry.name).symlink_to(entry)
    google = site / "google"
    google.mkdir()
    if (project_site / "google").is_dir():
        for entry in (project_site / "google").iterdir():
            (google / entry.name).symlink_to(entry)
    (google / "colab").mkdir()
    (google / "colab" / "__init__.py").write_text(FAKE_COLAB)
    (site / "zz_colab_runtime.pth").write_text("import google.colab\n")
    kernel = venv / "share" / "jupyter" / "kernels" / "colab"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Colab (simulated)",
                "language": "python",
            }
        )
    )
    return python


@pytest.mark.notebooks
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a git checkout")
def test_notebook_00_installs_and_runs_on_a_simulated_colab(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    for name in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV", "PIP_USER"):
        monkeypatch.delenv(name, raising=False)
    python = _colab_like_venv(tmp_path / "venv")
    probe = "import sys, google.colab; import importlib.util as u; print(u.find_spec('textinterest'))"
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert out.strip() == "None", f"textinterest must not be importable before the install cell runs: {out}"

    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    cell = _install_cell(nb)
    line = REPOSITORY_LINE.format(url=repository_url())
    assert line in cell.source
    cell.source = cell.source.replace(line, f'REPOSITORY = "{ROOT.as_uri()}"')  # this checkout, as git+file://
    nb.cells.append(nbformat.v4.new_code_cell("import textinterest\nprint('installed at', textinterest.__file__)"))
    work = tmp_path / "content"  # Colab's working folder: no checkout next to the notebook
    work.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "venv" / "share" / "jupyter"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: every dependency is already there, as on Colab
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # build with the setuptools at hand
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("TEXTINTEREST_METRICS_DIR", str(tmp_path / "metrics"))
    monkeypatch.setenv("TEXTINTEREST_FIGURES_DIR", str(tmp_path / "figures"))
    NotebookClient(nb, kernel_name="colab", timeout=600, resources={"metadata": {"path": str(work)}}).execute()

    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    installed = Path(printed.split("installed at", 1)[1].strip())
    assert installed.is_relative_to(tmp_path / "venv"), f"textinterest came from {installed}, not the install cell"
    assert not installed.parent.is_symlink()
    assert (tmp_path / "metrics" / f"{NOTEBOOKS[0].stem}.json").is_file(), "the notebook did not run to its end"


if __name__ == "__main__":
    if sys.argv[1:] != ["--sync"]:
        sys.exit("usage: python tests/test_colab.py --sync   (points every notebook at pyproject's Repository)")
    for notebook in sync(NOTEBOOKS, repository_url()):
        print(f"updated {notebook.relative_to(ROOT)}")
