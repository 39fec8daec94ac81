"""A static, self-contained HTML report of a study.

Everything is in one file: figures are embedded as base64 PNG data URIs, no
script or font is fetched, so the report opens offline and can be mailed or
archived with the results it describes.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
from PIL import Image

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; } td, th { padding: 2px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; } .note { color: #666; font-size: 0.9em; }
img { max-width: 100%; image-rendering: pixelated; } figure { margin: 1em 0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def png_data_uri(image) -> str:
    """A uint8 image (H, W[, 3]) as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """An HTML table of a DataFrame, floats rounded to ``digits``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                text = "" if np.isnan(v) else f"{v:.{digits}f}"
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def figure(image, caption: str, alt: str) -> str:
    """An embedded figure with a caption."""
    return (f'<figure><img alt="{html.escape(alt)}" src="{png_data_uri(image)}">'
            f"<figcaption class=note>{html.escape(caption)}</figcaption></figure>")


def page(title: str, sections: list[tuple[str, str]], *, subtitle: str = "") -> str:
    """The whole document: ``sections`` are (heading, HTML body) pairs."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class=note>{html.escape(subtitle)}</p>{body}</body></html>\n")
