"""``make site``: the executed notebooks and the report index as a static HTML site, checked in a browser.

The build is tested on a small report folder made here (two executed notebooks, one with a figure, a report
index linking its figure and the executed notebooks). The browser test opens every page of a site in headless
Chromium (Debian package ``chromium``) and checks that it loads, that every image is decoded, and that the
console shows no error. It runs on the site built here and, when ``TEXTINTEREST_SITE`` names a built site
(``make test`` builds ``site/`` from the smoke report), on that one too. Without Chromium it skips and says
why, unless ``TEXTINTEREST_REQUIRE_BROWSER=1`` (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from textinterest.apps.site import build_site, main, render_notebook

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [1, 0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _report(root: Path) -> Path:
    """A report folder as ``textinterest reproduce`` lays it out: executed/, figures/, index.html, runs.json."""
    report = root / "reports" / "smoke"
    (report / "executed").mkdir(parents=True)
    (report / "figures").mkdir()
    png = _png()
    (report / "figures" / "00_plot.png").write_bytes(png)
    figure = new_code_cell("plt.plot([0, 1, 2], [1, 0, 1])", execution_count=1)
    figure.outputs = [new_output("display_data", data={"image/png": base64.b64encode(png).decode()})]
    first = new_notebook(
        cells=[
            new_markdown_cell(
                "# 00 · A tour\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                "(https://colab.research.google.com/)\n\nSome $x_j$ text."
            ),
            figure,
        ]
    )
    second = new_notebook(cells=[new_markdown_cell("# 01 · Next"), new_code_cell("1 + 1", execution_count=1)])
    second.cells[1].outputs = [new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    nbformat.write(first, report / "executed" / "00_tour.ipynb")
    nbformat.write(second, report / "executed" / "01_next.ipynb")
    (report / "index.html").write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>report</title></head><body>'
        '<a href="executed/00_tour.ipynb">00</a><img src="figures/00_plot.png" alt="plot"></body></html>',
        encoding="utf-8",
    )
    runs = [{"notebook": "00_tour", "status": "ok", "duration_s": 4.2}, {"notebook": "01_next", "status": "failed"}]
    (report / "runs.json").write_text(json.dumps(runs), encoding="utf-8")
    return report


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    out = root / "site"
    assert main([str(_report(root)), str(out)]) == 0
    return out


def test_site_has_an_entry_page_every_notebook_and_the_report(site):
    assert sorted(p.name for p in (site / "notebooks").iterdir()) == ["00_tour.html", "01_next.html"]
    entry = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="notebooks/00_tour.html">00 · A tour</a>' in entry
    assert 'href="report/index.html"' in entry and 'class="failed">failed' in entry and "4 s" in entry
    report = (site / "report" / "index.html").read_text(encoding="utf-8")
    assert 'href="../notebooks/00_tour.html"' in report  # the executed notebook's link now opens its page
    assert (site / "report" / "figures" / "00_plot.png").is_file()


def test_pages_load_nothing_from_the_network_and_embed_their_figures(site):
    for page in [site / "index.html", *(site / "notebooks").glob("*.html")]:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r'<script[^>]*src="https?://', text), f"{page.name} loads a script from the network"
        assert not re.search(r'<link[^>]*href="https?://', text), f"{page.name} loads a style sheet from the network"
        assert not re.search(r'<img[^>]*src="https?://', text), f"{page.name} loads an image from the network"
    tour = (site / "notebooks" / "00_tour.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in tour
    assert re.search(r'<a href="https://colab.research.google.com/"[^>]*>Open In Colab</a>', tour)  # the badge


def test_mathjax_only_when_asked(tmp_path):
    notebook = _report(tmp_path) / "executed" / "00_tour.ipynb"
    assert not re.search(r'<script[^>]*src="[^"]*mathjax', render_notebook(notebook), flags=re.I)
    assert '<script src="https://example.org/mathjax.js">' in render_notebook(
        notebook, "https://example.org/mathjax.js"
    )


def test_a_report_without_executed_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="textinterest reproduce"):
        build_site(tmp_path, tmp_path / "site")


# ----------------------------------------------------------------------------------------------- browser

_HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><pre id="result">pending</pre>
<iframe id="page" src="PAGE" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => {
  const doc = document.getElementById("page").contentDocument;
  const images = doc ? Array.from(doc.images) : [];
  document.getElementById("result").textContent = JSON.stringify({
    title: doc ? doc.title : null,
    images: images.length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.src.slice(0, 80)),
  });
});
</script></body></html>
"""


def _browser() -> str | None:
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


def _open(browser: str, page: Path, tmp: Path) -> tuple[dict, list[str]]:
    """Load ``page`` in headless Chromium through a harness page; return what the harness saw and the
    console errors Chromium logged."""
    harness = tmp / f"harness_{page.parent.name}_{page.stem}.html"
    harness.write_text(_HARNESS.replace("PAGE", page.resolve().as_uri()), encoding="utf-8")
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            f"--user-data-dir={tmp / 'profile'}",
            "--dump-dom",
            harness.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, flags=re.S)
    assert found, f"Chromium did not render the harness for {page} (exit {run.returncode}): {run.stderr[-2000:]}"
    console = [
        line
        for line in run.stderr.splitlines()
        if "CONSOLE" in line and re.search(r"error|uncaught|failed", line, flags=re.I)
    ]
    return json.loads(found.group(1).replace("&quot;", '"')), console


def _site_pages(site: Path) -> list[Path]:
    return [site / "index.html", *sorted((site / "notebooks").glob("*.html")), *sorted(site.glob("report/*.html"))]


def _check_in_browser(site: Path, tmp: Path, min_images: dict[str, int]) -> None:
    browser = _browser()
    if browser is None:
        if os.environ.get("TEXTINTEREST_REQUIRE_BROWSER") == "1":
            pytest.fail("TEXTINTEREST_REQUIRE_BROWSER=1 but no chromium on PATH (make browser installs it)")
        pytest.skip("no headless Chromium on PATH (Debian: apt-get install chromium, or `make browser`)")
    for page in _site_pages(site):
        seen, console = _open(browser, page, tmp)
        assert seen != "pending" and seen["title"], f"{page} did not load"
        assert not seen["broken"], f"{page}: images that did not load: {seen['broken']}"
        assert seen["images"] >= min_images.get(page.stem, 0), f"{page}: expected figures, found {seen['images']}"
        assert not console, f"{page}: console errors:\n" + "\n".join(console)


def test_every_page_loads_in_a_browser_with_its_figures(site, tmp_path):
    _check_in_browser(site, tmp_path, {"00_tour": 1, "index": 0})


@pytest.mark.skipif(not os.environ.get("TEXTINTEREST_SITE"), reason="TEXTINTEREST_SITE names no built site")
def test_the_built_site_loads_in_a_browser(tmp_path):
    site = Path(os.environ["TEXTINTEREST_SITE"])
    assert (site / "index.html").is_file(), f"{site} has no index.html; run make site"
    notebooks = sorted((site / "notebooks").glob("*.html"))
    assert len(notebooks) == 7, f"expected the seven notebooks in {site}, found {[p.stem for p in notebooks]}"
    _check_in_browser(site, tmp_path, {p.stem: 1 for p in notebooks})


def test_the_browser_check_fails_on_a_broken_image_or_a_console_error(tmp_path):
    """The check is not vacuous: a missing figure and a script error are each caught."""
    if _browser() is None:
        pytest.skip("no headless Chromium on PATH (Debian: apt-get install chromium, or `make browser`)")
    for name, body in {
        "missing figure": '<img src="figures/nowhere.png" alt="x">',
        "script error": "<script>undefinedFunction();</script>",
        "console error": '<script>console.error("something broke");</script>',
    }.items():
        site = tmp_path / name.replace(" ", "_")
        (site / "notebooks").mkdir(parents=True)
        page = f"<!DOCTYPE html><html><head><title>t</title></head><body>{body}</body></html>"
        (site / "index.html").write_text(page)
        with pytest.raises(AssertionError, match="images that did not load|console errors"):
            _check_in_browser(site, tmp_path, {})
