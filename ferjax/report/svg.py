"""Charts as inline SVG: dot plots with intervals, scatters, heat maps, specification curves.

The report embeds these as text, so they stay sharp at any zoom, need no
plotting library and fetch nothing. Each function returns one ``<svg>``
element whose ``viewBox`` is about 480 units wide: scaled to a phone's 360
CSS pixels its 11-unit labels stay legible, and the report lays two side by
side on a laptop.
"""

from __future__ import annotations

import html

import numpy as np

#: Colour of each kind of candidate (a colour-blind-safe palette: Okabe & Ito).
COLOURS = {"CAM": "#0072B2", "GradCAM": "#009E73", "EP": "#D55E00", "baseline": "#8c8c8c",
           "people": "#CC79A7", "network": "#0072B2", "seen": "#E69F00"}
_FONT = 'font-family="system-ui, sans-serif"'


def colour_of(name: str) -> str:
    """The palette colour of a candidate name ("EP 0.1 true" -> EP's)."""
    for key in ("GradCAM", "CAM", "EP"):
        if name.startswith(key):
            return COLOURS[key]
    return COLOURS.get(name, COLOURS["baseline"])


def _t(x, y, text, size=11, anchor="start", weight="normal", fill="#222", extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}" {extra}>{html.escape(str(text))}</text>')


def _svg(width, height, body, label):
    return (f'<svg viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{html.escape(label)}" {_FONT} style="width:100%;height:auto;max-width:{width:.0f}px">'
            f'<title>{html.escape(label)}</title>{"".join(body)}</svg>')


def _ticks(lo, hi, n=5):
    step = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(step)) if step > 0 else 1
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= step), default=step)
    start = np.ceil(lo / step) * step
    return [v for v in np.arange(start, hi + step * 1e-6, step)]


def _num(v) -> str:
    """A tick label: no '-0', no float noise."""
    v = round(float(v), 10) + 0.0
    return f"{v:g}"


def _reference_lines(lines, scale, top, bottom, width, body):
    """Dashed vertical lines at ``(value, text)`` across the rows, labelled above them."""
    for value, text in lines:
        x = scale(value)
        body.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{bottom}" '
                    f'stroke="#555" stroke-dasharray="4 3"/>')
        anchor = "end" if x > width - 60 else "middle"   # keep the label inside the figure
        body.append(_t(x, top - 9, text, 10, anchor, fill="#555"))


def _axis(x0, x1, y, lo, hi, label, body):
    scale = lambda v: x0 + (v - lo) / (hi - lo) * (x1 - x0)  # noqa: E731
    body.append(f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#444"/>')
    for v in _ticks(lo, hi):
        x = scale(v)
        body.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#444"/>')
        body.append(_t(x, y + 16, _num(v), 11, "middle"))
    body.append(_t((x0 + x1) / 2, y + 32, label, 12, "middle"))
    return scale


def dot_plot(rows, *, title, xlabel, lines=(), label_width=150) -> str:
    """Means with 95% intervals, one row per candidate (a forest plot).

    rows: dicts with ``label``, ``mean``, ``lo``, ``hi`` and optional
    ``colour`` and ``bold``; lines: ``(value, text)`` reference lines drawn
    dashed across the rows (a noise ceiling, chance).
    """
    width, row_h, top = 480, 21, 30
    height = top + row_h * len(rows) + 46
    values = [v for r in rows for v in (r["lo"], r["hi"], r["mean"]) if np.isfinite(v)] + [v for v, _ in lines]
    lo, hi = min(values + [0.0]), max(values)
    pad = (hi - lo) * 0.05 or 0.05
    body = [_t(4, 16, title, 13, weight="bold")]
    x0, x1 = label_width, width - 12
    scale = _axis(x0, x1, top + row_h * len(rows) + 4, lo - pad, hi + pad, xlabel, body)
    _reference_lines(lines, scale, top, top + row_h * len(rows), width, body)
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        colour = r.get("colour") or colour_of(r["label"])
        body.append(_t(x0 - 8, y + 4, r["label"], 12, "end", "bold" if r.get("bold") else "normal"))
        if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
            body.append(f'<line x1="{scale(r["lo"]):.1f}" y1="{y}" x2="{scale(r["hi"]):.1f}" y2="{y}" '
                        f'stroke="{colour}" stroke-width="2"/>')
        body.append(f'<circle cx="{scale(r["mean"]):.1f}" cy="{y}" r="4" fill="{colour}"/>')
    return _svg(width, height, body, title)


def scatter(series, *, title, xlabel, ylabel, lo=0.0, hi=1.0, diagonal=True) -> str:
    """Points of several series in one square plot: series = [(name, colour, xs, ys)]."""
    width, height, left, bottom, top = 480, 400, 52, 352, 40
    right = width - 16
    body = [_t(4, 16, title, 13, weight="bold")]
    sx = _axis(left, right, bottom, lo, hi, xlabel, body)
    sy = lambda v: bottom - (v - lo) / (hi - lo) * (bottom - top)  # noqa: E731
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{top}" stroke="#444"/>')
    for v in _ticks(lo, hi):
        body.append(_t(left - 6, sy(v) + 4, _num(v), 11, "end"))
    body.append(_t(14, (top + bottom) / 2, ylabel, 11, "middle",
                   extra=f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
    if diagonal:
        body.append(f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" '
                    f'stroke="#999" stroke-dasharray="4 3"/>')
    for k, (name, colour, xs, ys) in enumerate(series):
        for x, y in zip(xs, ys):
            if np.isfinite(x) and np.isfinite(y):
                body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.2" fill="{colour}" '
                            f'fill-opacity="0.75"/>')
        body.append(f'<circle cx="{left + 12}" cy="{top + 6 + 16 * k}" r="4" fill="{colour}"/>')
        body.append(_t(left + 22, top + 10 + 16 * k, name, 12))
    return _svg(width, height, body, title)


def _heat(v):
    """A light-to-dark sequential colour for v in [0, 1]."""
    a, b = np.array([247, 251, 255]), np.array([8, 48, 107])
    c = np.round(a + (b - a) * float(np.clip(v, 0, 1))).astype(int)
    return f"rgb({c[0]},{c[1]},{c[2]})"


def heatmap(matrix, *, title, row_labels, col_labels, vmax=1.0, row_title="", col_title="", digits=2) -> str:
    """A matrix of values in [0, vmax] as shaded cells with the value printed; nan cells left blank."""
    m = np.asarray(matrix, float)
    cell, left, top = 34, 70, 58
    width, height = left + cell * m.shape[1] + 8, top + cell * m.shape[0] + 8
    body = [_t(4, 16, title, 13, weight="bold"), _t(left + cell * m.shape[1] / 2, 30, col_title, 10, "middle")]
    for j, name in enumerate(col_labels):
        body.append(_t(left + cell * (j + 0.5), top - 6, name, 9, "middle"))
    for i, name in enumerate(row_labels):
        y = top + cell * i
        body.append(_t(left - 5, y + cell / 2 + 4, name, 9, "end"))
        for j in range(m.shape[1]):
            x = left + cell * j
            if not np.isfinite(m[i, j]):
                body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="#fff" stroke="#eee"/>')
                continue
            v = m[i, j] / vmax
            body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_heat(v)}" stroke="#fff"/>')
            body.append(_t(x + cell / 2, y + cell / 2 + 4, f"{m[i, j]:.{digits}f}".lstrip("0"), 9, "middle",
                           fill="#fff" if v > 0.55 else "#222"))
    body.append(_t(12, top + cell * m.shape[0] / 2, row_title, 10, "middle",
                   extra=f'transform="rotate(-90 12 {top + cell * m.shape[0] / 2:.1f})"'))
    return _svg(width, height, body, title)


def strips(groups, *, title, xlabel, lines=(), label_width=150) -> str:
    """Each group's individual values as jittered dots, with its mean and interval.

    groups: dicts with ``label``, ``values`` (1-D), ``mean``, ``lo``, ``hi``, ``colour``.
    """
    width, row_h, top = 480, 34, 28
    height = top + row_h * len(groups) + 44
    values = [v for g in groups for v in list(np.asarray(g["values"], float)) + [g["lo"], g["hi"]]
              if np.isfinite(v)] + [v for v, _ in lines]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 0.05
    body = [_t(4, 16, title, 13, weight="bold")]
    x0, x1 = label_width, width - 12
    scale = _axis(x0, x1, top + row_h * len(groups) + 4, lo - pad, hi + pad, xlabel, body)
    _reference_lines(lines, scale, top, top + row_h * len(groups), width, body)
    rng = np.random.default_rng(0)
    for i, g in enumerate(groups):
        y = top + row_h * i + row_h / 2
        body.append(_t(x0 - 8, y + 4, g["label"], 12, "end"))
        for v in np.asarray(g["values"], float):
            if np.isfinite(v):
                body.append(f'<circle cx="{scale(v):.1f}" cy="{y + rng.uniform(-8, 8):.1f}" r="2" '
                            f'fill="{g["colour"]}" fill-opacity="0.35"/>')
        if np.isfinite(g["lo"]) and np.isfinite(g["hi"]):
            body.append(f'<line x1="{scale(g["lo"]):.1f}" y1="{y}" x2="{scale(g["hi"]):.1f}" y2="{y}" '
                        f'stroke="#222" stroke-width="2.5"/>')
        body.append(f'<circle cx="{scale(g["mean"]):.1f}" cy="{y}" r="4.5" fill="{g["colour"]}" stroke="#222"/>')
    return _svg(width, height, body, title)


def spec_curve(margins, winners, choices, *, title, ylabel, colours) -> str:
    """A specification curve: each analysis variant's margin, sorted, over indicator rows of its choices.

    margins: (V,) the quantity sorted along x (e.g. EP's score minus the best
    other method's); winners: (V,) names, colouring each variant; choices:
    ``[(dimension, values (V,))]``, one indicator row per distinct value.
    """
    margins = np.asarray(margins, float)
    order = np.argsort(margins, kind="stable")
    n = len(margins)
    rows = [(dim, v) for dim, vals in choices for v in sorted(set(vals), key=str)]
    left, width, top, curve_h, row_h = 120, 480, 40, 150, 11
    height = top + curve_h + 16 + row_h * len(rows) + 10 + 16 * len(colours)
    x = lambda i: left + (i + 0.5) * (width - left - 8) / n  # noqa: E731
    lo, hi = min(margins.min(), 0.0), max(margins.max(), 0.0)
    pad = (hi - lo) * 0.05 or 0.05
    y = lambda v: top + curve_h - (v - lo + pad) / (hi - lo + 2 * pad) * curve_h  # noqa: E731
    body = [_t(4, 16, title, 13, weight="bold"), _t(left - 8, top + 8, ylabel, 10, "end"),
            f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - 8}" y2="{y(0):.1f}" stroke="#555" stroke-dasharray="4 3"/>']
    for v in _ticks(lo - pad, hi + pad, 4):
        body.append(_t(left - 8, y(v) + 4, f"{v:+.2g}" if v else "0", 10, "end"))
    for k, i in enumerate(order):
        body.append(f'<rect x="{x(k) - 0.5:.2f}" y="{min(y(margins[i]), y(0)):.1f}" width="1" '
                    f'height="{abs(y(margins[i]) - y(0)):.1f}" fill="{colours.get(winners[i], "#888")}"/>')
    base = top + curve_h + 16
    for r, (dim, value) in enumerate(rows):
        yy = base + row_h * r
        body.append(_t(left - 8, yy + 8, f"{dim}: {value}", 8.5, "end"))
        vals = dict(choices)[dim]
        marks = [k for k, i in enumerate(order) if vals[i] == value]
        body.extend(f'<rect x="{x(k) - 0.5:.2f}" y="{yy + 2}" width="1" height="7" fill="#333"/>' for k in marks)
    legend = base + row_h * len(rows) + 14
    for k, (name, colour) in enumerate(colours.items()):
        body.append(f'<rect x="{left}" y="{legend + 16 * k - 8}" width="10" height="10" fill="{colour}"/>')
        body.append(_t(left + 16, legend + 16 * k + 1, f"{name} ranks first", 11))
    return _svg(width, height, body, title)


def share_bars(rows, *, title, colours) -> str:
    """Horizontal 100% stacked bars: rows = [(label, {name: share})], shares summing to 1."""
    left, width, row_h, top = 150, 480, 18, 26
    height = top + row_h * len(rows) + 20
    body = [_t(4, 16, title, 13, weight="bold")]
    span = width - left - 8
    for i, (label, shares) in enumerate(rows):
        yy = top + row_h * i
        body.append(_t(left - 8, yy + 12, label, 10, "end"))
        x = left
        for name, colour in colours.items():
            w = span * shares.get(name, 0.0)
            if w > 0:
                body.append(f'<rect x="{x:.1f}" y="{yy + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{colour}">'
                            f'<title>{html.escape(name)}: {shares[name]:.0%}</title></rect>')
                if w > 26:
                    body.append(_t(x + w / 2, yy + 12.5, f"{shares[name]:.0%}", 9, "middle", fill="#fff"))
            x += w
    legend_y = top + row_h * len(rows) + 12
    x = left
    for name, colour in colours.items():
        body.append(f'<rect x="{x}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>')
        body.append(_t(x + 14, legend_y + 1, name, 10))
        x += 22 + 7 * len(name)
    return _svg(width, height, body, title)


def colourbar(colour_stops, *, title, lo="0", hi="1", width=240) -> str:
    """A horizontal colour bar from a list of ``(r, g, b)`` stops, labelled at both ends."""
    stops = "".join(f'<stop offset="{k / (len(colour_stops) - 1):.3f}" stop-color="rgb({r:.0f},{g:.0f},{b:.0f})"/>'
                    for k, (r, g, b) in enumerate(colour_stops))
    body = [f'<defs><linearGradient id="cbar">{stops}</linearGradient></defs>',
            f'<rect x="10" y="20" width="{width - 20}" height="12" fill="url(#cbar)" stroke="#888"/>',
            _t(10, 14, title, 10), _t(10, 46, lo, 10), _t(width - 10, 46, hi, 10, "end")]
    return _svg(width, 52, body, title)
