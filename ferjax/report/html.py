"""A static, self-contained HTML report of a study.

Everything is in one file: figures are inline SVG or base64 PNG data URIs,
styles and the few lines of script (sortable tables) are inline, and no
font, script or image is fetched, so the report opens offline and can be
mailed or archived with the results it describes. The layout is one column
on a phone and lays figures side by side on a laptop; wide tables scroll
inside their own box.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

# The stylesheet and the table-sorting script (numbers by their data-v value, text otherwise), inlined into
# every page: nothing is fetched.
_STYLE = (Path(__file__).parent / "style.css").read_text()
_SCRIPT = (Path(__file__).parent / "sortable.js").read_text()


def png_data_uri(image) -> str:
    """A uint8 image (H, W[, 3]) as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_data_uri(image, quality: int = 85) -> str:
    """A uint8 RGB image as a ``data:image/jpeg;base64,...`` URI: a fifth of a PNG's size for heat-map
    overlays, of which the report holds hundreds."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def format_p(p) -> str:
    """A p-value for a table: ``< 0.001`` below a thousandth, else three significant digits; blank if missing."""
    if p is None or not np.isfinite(p):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def table(frame: pd.DataFrame, *, digits: int = 3, p_columns=(), headers=None, sortable: bool = True) -> str:
    """An HTML table of a DataFrame in a scrolling box; floats rounded to ``digits``.

    Columns named in ``p_columns`` are p-values (:func:`format_p`, never a
    bare ``0.000``); ``headers`` renames columns for display. Numeric cells
    carry their exact value for sorting.
    """
    headers = headers or {}
    head = "".join(f"<th>{html.escape(str(headers.get(c, c)))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for col, v in zip(frame.columns, row):
            if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool):
                num = float(v)
                text = format_p(num) if col in p_columns else ("" if np.isnan(num) else
                                                               f"{num:.{digits}f}" if isinstance(v, (float, np.floating))
                                                               else str(v))
                cells.append(f'<td data-v="{num!r}">{html.escape(text)}</td>')
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def figure(content: str, caption: str, *, fig_id: str) -> str:
    """A figure with an id (the report's tests look figures up by it): inline SVG or HTML, and a caption."""
    return f'<figure id="{fig_id}">{content}<figcaption>{html.escape(caption)}</figcaption></figure>'


def image(array, alt: str, *, photo: bool = False) -> str:
    """An embedded image: PNG, or JPEG with ``photo`` (overlays, where PNG is five times larger)."""
    uri = jpeg_data_uri(array) if photo else png_data_uri(array)
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def details(summary: str, body: str, *, open_: bool = False) -> str:
    """A collapsible block."""
    return f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>{body}</details>"


def page(title: str, sections: list[tuple[str, str]], *, subtitle: str = "", lead: str = "") -> str:
    """The whole document: ``sections`` are (heading, HTML body) pairs; ``lead`` is the answer, on top."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=note>{html.escape(subtitle)}</p>{lead}{body}"
            f"<script>{_SCRIPT}</script></body></html>\n")
