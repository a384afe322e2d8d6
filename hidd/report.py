"""Pictures to compare by eye: one side-by-side image per photo and an index.html that shows them all.

hidd-reconstruct --compare writes OUTPUT/compare/NAME.png, the input, the output and (where there is one) the
target side by side at full resolution, and OUTPUT/index.html, a page with every photo's picture above its
metrics.csv row. The page is rewritten (atomically) after each photo, as metrics.csv is, so it always shows what
is done; it uses no script and nothing from outside the folder, so it opens from disk or any file server.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np

from hidd.atomic import write_text_atomic
from hidd.results import COMPARE, INDEX, compare_path
from hidd.text import printable

GAP = 4  # white pixels between panels
PANELS = ("input", "output", "target")
# metrics.csv's columns shown
SHOWN = ["nfe", "seconds", "radius", "share", "reason", "psnr_input", "psnr", "ssim_input", "ssim"]


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Images H×W×C (C 1 or 3, one height) in a row, RGB, GAP white columns apart."""
    height = panels[0].shape[0]
    gap = np.ones((height, GAP, 3), np.float32)
    row = [p if p.shape[2] == 3 else np.repeat(p, 3, axis=2) for p in panels]
    return np.concatenate([x for p in row for x in (p, gap)][:-1], axis=1)


def _cell(value) -> str:
    return html.escape(str(value))  # as metrics.csv holds it


def index_html(rows: list[dict], title: str, pictured: Callable[[str], bool] = lambda name: True) -> str:
    """The page for metrics.csv `rows` (its dicts, in order): each photo's name, its picture (where `pictured(name)`:
    a row resumed from a run without --compare has none) and its metrics."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
             "</title>\n<style>body{font-family:sans-serif;margin:1em}figure{margin:0 0 2em}"
             "img{max-width:100%;height:auto;image-rendering:pixelated}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>\n</head>\n<body>\n"
             f"<h1>{html.escape(title)}</h1>\n<p>Each picture: {' | '.join(PANELS)} (where a target was given).</p>\n"]
    for row in rows:
        name = str(row["name"])
        source = quote(f"{COMPARE}/{name}.png", errors="surrogateescape")  # the file's bytes, whatever they are
        name = printable(name)
        head = "".join(f"<th>{key}</th>" for key in SHOWN)
        cells = "".join(f"<td>{_cell(row.get(key, ''))}</td>" for key in SHOWN)
        picture = (f"<img src=\"{source}\" alt=\"{html.escape(name, quote=True)}: {' | '.join(PANELS)}\">"
                   if pictured(str(row["name"])) else "<p>(no picture: done by a run without --compare)</p>")
        parts.append(f"<figure id=\"{html.escape(name, quote=True)}\">\n<figcaption><b>{html.escape(name)}</b> "
                     f"({html.escape(printable(str(row.get('input', ''))))})</figcaption>\n{picture}\n"
                     f"<table><tr>{head}</tr><tr>{cells}</tr></table>\n</figure>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def write_index(out: Path, rows: list[dict], title: str) -> None:
    """OUTPUT/index.html for these rows, written atomically."""
    write_text_atomic(out / INDEX, index_html(rows, title, lambda name: compare_path(out, name).is_file()))
