"""A static HTML site of an executed report: the notebooks with their outputs, and the report index.

``make site`` runs ``textinterest reproduce --profile smoke`` and then this module::

    python -m textinterest.apps.site reports/smoke site

which writes::

    site/
    ├── index.html              entry page: every notebook with its status and run time, and the report index
    ├── notebooks/<nb>.html     each executed notebook rendered by nbconvert, figures embedded as data URIs
    └── report/index.html       the report's index (results, statuses, environment) with its figures/

The pages load nothing from the network (no script, style sheet or image: a badge such as "Open in
Colab" becomes its text, still a link), so the site can be opened from disk or served from any static
host. The price is MathJax: equations show as their TeX source. ``--mathjax URL`` adds it back for a
site served online.

nbconvert renders the notebooks because the package already depends on it (``reproduce`` uses it) and
it is what Jupyter itself uses to export a notebook: no second toolchain (Sphinx for Jupyter Book,
MkDocs for mkdocs-jupyter) and no configuration to keep in step with the notebooks.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from textinterest.utils import atomic_write_text

__all__ = ["build_site", "render_notebook", "main"]

_EXTERNAL = re.compile(
    r'<script\b[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>|<link\b[^>]*\bhref="https?://[^"]*"[^>]*/?>',
    flags=re.IGNORECASE,
)
_REMOTE_IMAGE = re.compile(r'<img\b[^>]*\bsrc="https?://[^"]*"[^>]*>', flags=re.IGNORECASE)
_ALT = re.compile(r'\balt="([^"]*)"', flags=re.IGNORECASE)
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "th{background:#f3f3f3}.failed{color:#b00}"
)


def _alt_text(image: re.Match[str]) -> str:
    alt = _ALT.search(image.group(0))
    return alt.group(1) if alt and alt.group(1) else "image"


def render_notebook(path: str | Path, mathjax_url: str | None = None) -> str:
    """One executed notebook as a self-contained HTML page (nbconvert's lab template).

    Args:
        path: the executed ``.ipynb``.
        mathjax_url: MathJax to load for the equations; None: no external script at all.
    """
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(path))
    body = _EXTERNAL.sub("", body)  # require.js and MathJax from a CDN: nothing the outputs need
    # a badge from the network (Open in Colab) becomes its alternative text; the link around it stays
    body = _REMOTE_IMAGE.sub(_alt_text, body)
    if mathjax_url:
        script = f'<script src="{html.escape(mathjax_url)}"></script>'
        body = body.replace("</head>", f"{script}\n</head>", 1)
    return body


def _title(path: Path) -> str:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            first = "".join(cell.get("source", "")).strip().splitlines()
            if first and first[0].startswith("#"):
                return first[0].lstrip("#").strip()
    return path.stem


def _runs(report_dir: Path) -> dict[str, dict]:
    """The run records of ``runs.json`` (a list, one per notebook) by notebook name; {} without the file."""
    path = report_dir / "runs.json"
    records = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    return {str(r.get("notebook")): r for r in records if isinstance(r, dict)}


def _entry_page(report_dir: Path, pages: Sequence[tuple[str, str]]) -> str:
    runs = _runs(report_dir)
    rows = []
    for stem, title in pages:
        run = runs.get(stem, {})
        status = str(run.get("status", ""))
        seconds = run.get("duration_s")
        took = f"{float(seconds):.0f} s" if isinstance(seconds, (int, float)) else ""
        css = ' class="failed"' if status == "failed" else ""
        rows.append(
            f'<tr><td><a href="notebooks/{html.escape(stem)}.html">{html.escape(title)}</a></td>'
            f"<td{css}>{html.escape(status)}</td><td>{took}</td></tr>"
        )
    report = (
        '<p>The <a href="report/index.html">report index</a>: headline results, statuses and the environment.</p>'
        if (report_dir / "index.html").is_file()
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>textinterest notebooks</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>textinterest: the notebooks, executed</h1>\n"
        f"<p>Executed by <code>textinterest reproduce</code> into <code>{html.escape(report_dir.name)}</code>; "
        "read them without running anything. Equations are shown as TeX.</p>\n"
        f"{report}\n<table><tr><th>notebook</th><th>status</th><th>run time</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n</body></html>\n"
    )


def build_site(report_dir: str | Path, out_dir: str | Path, *, mathjax_url: str | None = None) -> Path:
    """Write the static site of a report folder and return the path of its entry page.

    Args:
        report_dir: a folder written by ``textinterest reproduce`` (``executed/*.ipynb`` at least).
        out_dir: where the site goes; its ``notebooks/`` and ``report/`` are replaced.
        mathjax_url: see :func:`render_notebook`.

    Raises:
        FileNotFoundError: the report folder has no executed notebook.
    """
    report_dir, out_dir = Path(report_dir), Path(out_dir)
    executed = sorted((report_dir / "executed").glob("*.ipynb"))
    if not executed:
        raise FileNotFoundError(f"{report_dir / 'executed'} holds no executed notebook; run textinterest reproduce")
    for sub in ("notebooks", "report"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / "notebooks").mkdir(parents=True)
    pages = []
    for path in executed:
        atomic_write_text(out_dir / "notebooks" / f"{path.stem}.html", render_notebook(path, mathjax_url))
        pages.append((path.stem, _title(path)))
    if (report_dir / "index.html").is_file():
        (out_dir / "report").mkdir()
        index = (report_dir / "index.html").read_text(encoding="utf-8")
        index = re.sub(r'href="executed/([^"/]+)\.ipynb"', r'href="../notebooks/\1.html"', index)
        atomic_write_text(out_dir / "report" / "index.html", index)
        if (report_dir / "figures").is_dir():
            shutil.copytree(report_dir / "figures", out_dir / "report" / "figures")
    return atomic_write_text(out_dir / "index.html", _entry_page(report_dir, pages))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m textinterest.apps.site REPORT_DIR OUT_DIR [--mathjax URL]``."""
    parser = argparse.ArgumentParser(prog="python -m textinterest.apps.site", description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", help="a folder written by textinterest reproduce, e.g. reports/smoke")
    parser.add_argument("out_dir", help="where the site goes, e.g. site")
    parser.add_argument("--mathjax", default=None, help="URL of MathJax to render equations (a site served online)")
    args = parser.parse_args(argv)
    entry = build_site(args.report_dir, args.out_dir, mathjax_url=args.mathjax)
    print(f"site: {entry}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
