"""Human click logs -> human attention maps and people's percent correct.

Logs. The reference program writes ``<root>/<yymmdd>_<participant>/`` with
``choices.csv`` (filename,true,false,chosen,correct,time,count) and
``clicks.csv`` (filename,x_pos,y_pos,time). ferjax's tidy format is two tables:
trials (participant, filename, true, foil, chosen, correct, time, count) and
clicks (participant, filename, order, x, y, time), order = 1, 2, ... per trial.

Maps. Trial t of image i has clicks (x_k, y_k), k = 1..K_t. Click k uncovers
  disk:  D_k = {(r, c) : (c - x_k)^2 + (r - y_k)^2 < radius^2}  (integer r, c)
  tile:  D_k = {(r, c) : cell(r, rows) = cell(y_k, rows), cell(c, cols) = cell(x_k, cols)},
         cell(v, n) = floor(v * n / size) for pixels and clicks alike, so a click always
         uncovers the cell it lies in (cell k starts at ceil(k size / n); = floor when n | size).
The trial's mask is M_t(r, c) = w(min{k : (r, c) in D_k}) (0 where no click
uncovered the pixel), with w(k) = 1 ("none"), 1/k ("inverse_order") or
exp(-rate (k - 1)) ("exponential"); a pixel keeps its FIRST uncovering click's
weight. The image map is H_i = sum_{t: image i} M_t (participants summed, not
normalised), optionally convolved with a Gaussian of ``sigma`` pixels.
Scoring counts a trial correct iff correct and count > 0 (reference rule).
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ferjax.errors import InputError
from ferjax.files import atomic_path
from ferjax.labels import NUM_CLASSES

TRIAL_COLUMNS = ("participant", "filename", "true", "foil", "chosen", "correct", "time", "count")
CLICK_COLUMNS = ("participant", "filename", "order", "x", "y", "time")
CHOICES_COLUMNS = ("filename", "true", "false", "chosen", "correct", "time", "count")
CLICKS_COLUMNS = ("filename", "x_pos", "y_pos", "time")
_KIND = {"participant": "str", "filename": "str", "true": "int", "foil": "int", "chosen": "int",
         "correct": "bool", "time": "float", "count": "int", "order": "int", "x": "float", "y": "float"}
_LAYOUT = "expected <yymmdd>_<participant> folders holding choices.csv and clicks.csv"


def _first(mask) -> int | None:
    hits = np.flatnonzero(np.asarray(mask))
    return int(hits[0]) if len(hits) else None


def _parse(raw: pd.Series, column: str, kind: str, path, where) -> np.ndarray:
    """Column ``raw`` as int64 / float64 / bool / str values; InputError on the first bad row."""
    if kind == "bool" and pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(bool)
    text = raw.astype(str).str.strip()
    if kind == "str":
        vals, bad = text.to_numpy(object), (text == "").to_numpy() | raw.isna().to_numpy()
    elif kind == "bool":
        low = text.str.lower()
        vals, bad = (low == "true").to_numpy(), ~low.isin(["true", "false"]).to_numpy()
    else:
        num = (np.full(len(raw), np.nan) if pd.api.types.is_bool_dtype(raw)
               else pd.to_numeric(raw if pd.api.types.is_numeric_dtype(raw) else text, errors="coerce")
               .to_numpy(dtype=float, na_value=np.nan))
        bad = ~np.isfinite(num) | ((num != np.round(num)) if kind == "int" else False)
        vals = num.astype(np.int64) if kind == "int" and not bad.any() else num
    i = _first(bad)
    if i is not None:
        word = {"int": "an integer", "float": "a number", "bool": "True or False", "str": "a name"}[kind]
        raise InputError(path, where(i), f"column '{column}': cannot read {raw.iloc[i]!r} as {word}")
    return vals


def _read_csv(path: Path, required, who: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, who, "file not found", _LAYOUT)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.EmptyDataError) as err:
        raise InputError(path, who, f"cannot read CSV: {err}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(path, f"{who}, header", f"missing column(s) {', '.join(missing)}",
                         f"expected {','.join(required)}")
    return df


def _check(t, c, paths, where, size, foil="false", tidy=False):
    """Validate typed trials ``t`` and clicks ``c``; table j is ``paths[j]``, ``where[j](i)`` names row i."""
    s = c.sort_values(["participant", "filename", "order"], kind="stable")
    k = s.groupby(["participant", "filename"]).cumcount().to_numpy()  # 0-based place within its trial
    misordered, back = np.zeros(len(c), bool), np.zeros(len(c), bool)
    misordered[s.index] = tidy & (s["order"].to_numpy() != k + 1)
    back[s.index[1:]] = (k[1:] > 0) & (np.diff(s["time"].to_numpy()) < 0)
    known = pd.MultiIndex.from_frame(c[["participant", "filename"]]).isin(
        pd.MultiIndex.from_frame(t[["participant", "filename"]]))
    inside = c["x"].between(0, size, inclusive="left") & c["y"].between(0, size, inclusive="left")
    v = lambda col, i: t[col].iat[i]  # noqa: E731
    rules = [*((0, (t[col] < 0) | (t[col] >= NUM_CLASSES), lambda i, col=col, name=name:
                f"column '{name}': label {v(col, i)} is outside 0..{NUM_CLASSES - 1}")
               for col, name in (("true", "true"), ("foil", foil), ("chosen", "chosen"))),
             (0, t["true"] == t["foil"], lambda i: f"true and {foil} are both {v('true', i)}"),
             (0, (t["chosen"] != t["true"]) & (t["chosen"] != t["foil"]),
              lambda i: f"chosen {v('chosen', i)} is neither true nor {foil}"),
             (0, t["correct"] != (t["chosen"] == t["true"]),
              lambda i: f"correct={v('correct', i)} disagrees with chosen == true"),
             (0, t["time"] < 0, lambda i: f"column 'time' is negative ({v('time', i)})"),
             (0, t["count"] < 0, lambda i: f"column 'count' is negative ({v('count', i)})"),
             (0, t.duplicated(["participant", "filename"]),
              lambda i: f"image {v('filename', i)} appears twice for this participant"),
             (1, ~inside, lambda i: f"click ({c['x'].iat[i]:g}, {c['y'].iat[i]:g}) is outside the "
                                    f"{size}x{size} display frame"),
             (1, c["time"] < 0, lambda i: f"column 'time' is negative ({c['time'].iat[i]})"),
             (1, ~known, lambda i: f"click for image {c['filename'].iat[i]}, which has no trial"),
             (1, misordered, lambda i: "click orders within a trial must run 1, 2, ..., n"),
             (1, back, lambda i: "click time goes backwards within the trial")]
    for j, mask, message in rules:
        if (i := _first(mask)) is not None:
            raise InputError(paths[j], where[j](i), message(i))


def _frame(cols, data) -> pd.DataFrame:
    df = pd.DataFrame({k: data[k] for k in cols})
    return df.astype({k: {"str": str, "int": np.int64, "float": np.float64, "bool": bool}[_KIND[k]] for k in cols})


def _read_reference(root: Path, size: int):
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                     and ("_" in d.name or (d / "choices.csv").exists()))
    if not folders:
        raise InputError(root, None, "no participant folders", _LAYOUT)
    seen, trials, clicks = {}, [], []
    for d in folders:
        name = d.name.partition("_")[2]
        if not name or name in seen:
            raise InputError(d, None, f"participant {name!r} is in two folders" if name
                             else "folder name is not <yymmdd>_<participant>", _LAYOUT)
        seen[name] = d
        who = f"participant {name}"
        where = partial("{}, row {}".format, who)
        cp, kp = d / "choices.csv", d / "clicks.csv"
        ch, ck = _read_csv(cp, CHOICES_COLUMNS, who), _read_csv(kp, CLICKS_COLUMNS, who)
        if not len(ch):
            raise InputError(cp, who, "no trials")
        at = lambda i, where=where: where(i + 1)  # noqa: E731
        t = _frame(TRIAL_COLUMNS, {"participant": [name] * len(ch), **{new: _parse(ch[old], old, _KIND[new], cp, at)
                   for new, old in zip(TRIAL_COLUMNS[1:], CHOICES_COLUMNS)}})
        c = {new: _parse(ck[old], old, _KIND[new], kp, at)
             for new, old in zip(("filename", "x", "y", "time"), CLICKS_COLUMNS)}
        order = pd.Series(c["filename"]).groupby(c["filename"]).cumcount().to_numpy() + 1 if len(ck) else []
        c = _frame(CLICK_COLUMNS, {"participant": [name] * len(ck), "order": order, **c})
        _check(t, c, (cp, kp), (at, at), size)
        trials.append(t), clicks.append(c)
    return pd.concat(trials, ignore_index=True), pd.concat(clicks, ignore_index=True)


def _read_tidy(folder: Path, ext: str, size: int):
    tables, paths, where = [], [], []
    for name, cols in (("trials", TRIAL_COLUMNS), ("clicks", CLICK_COLUMNS)):
        p = folder / f"{name}{ext}"
        if not p.is_file():
            raise InputError(p, None, "file not found", "tidy logs need trials and clicks tables side by side")
        try:
            raw = pd.read_parquet(p) if ext == ".parquet" else pd.read_csv(p, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as err:
            raise InputError(p, None, f"cannot read: {err}") from None
        if sorted(map(str, raw.columns)) != sorted(cols):
            raise InputError(p, "header", f"columns must be exactly {','.join(cols)}",
                             f"found {','.join(map(str, raw.columns))}")
        raw = raw.reset_index(drop=True)
        who = _parse(raw["participant"], "participant", "str", p, lambda i: f"row {i + 1}")
        at = lambda i, who=who: f"participant {who[i]}, row {i + 1}"  # noqa: E731
        tables.append(_frame(cols, {k: _parse(raw[k], k, _KIND[k], p, at) for k in cols}))
        paths.append(p), where.append(at)
    _check(*tables, paths, where, size, foil="foil", tidy=True)
    return tuple(tables)


def load_logs(path, *, size: int = 256):
    """Read click logs -> ``(trials, clicks)`` DataFrames (module docstring gives the columns).

    ``path`` is a reference-layout log folder, a folder holding tidy
    ``trials.(parquet|csv)`` and ``clicks.(parquet|csv)`` (parquet wins), or one
    of those tidy files (its sibling is read too). Clicks must lie in the
    ``size`` x ``size`` frame. Bad input raises InputError naming the file,
    participant and 1-based data row; a ``count`` that disagrees with the number
    of clicks only warns (UserWarning). Extra columns in the reference CSVs are
    ignored; tidy tables must have exactly their columns.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "not found")
    if path.is_file():
        if path.suffix not in (".parquet", ".csv") or path.stem not in ("trials", "clicks"):
            raise InputError(path, None, "not a log", "pass a log folder or a tidy trials/clicks .parquet or .csv")
        trials, clicks = _read_tidy(path.parent, path.suffix, size)
    else:
        ext = next((e for e in (".parquet", ".csv") if (path / f"trials{e}").is_file()), None)
        trials, clicks = _read_tidy(path, ext, size) if ext else _read_reference(path, size)
    n = clicks.groupby(["participant", "filename"]).size().rename("_n")
    got = trials.join(n, on=["participant", "filename"])["_n"].fillna(0).to_numpy()
    if (bad := int((got != trials["count"].to_numpy()).sum())):
        warnings.warn(f"{path}: 'count' disagrees with the number of clicks in {bad} trial(s)",
                      UserWarning, stacklevel=2)
    return trials, clicks


def save_tidy(trials, clicks, folder, fmt: str = "parquet") -> None:
    """Write ``folder/trials.<fmt>`` and ``folder/clicks.<fmt>`` atomically (fmt: parquet or csv)."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    t, c = trials[list(TRIAL_COLUMNS)], clicks[list(CLICK_COLUMNS)]
    folder = Path(folder)
    with atomic_path(folder / f"trials.{fmt}") as tt, atomic_path(folder / f"clicks.{fmt}") as ct:
        for frame, tmp in ((t, tt), (c, ct)):
            if fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False, lineterminator="\n")


def save_reference(trials, clicks, folder, dates=None) -> None:
    """Write the reference program's layout into ``folder`` (``dates``: participant -> yymmdd,
    default 000000). Not atomic by itself: wrap it in ``files.atomic_path(directory=True)``."""
    dates = dates or {}
    for name, t in trials.groupby("participant", sort=False):
        d = Path(folder) / f"{dates.get(name, '000000')}_{name}"
        d.mkdir(parents=True, exist_ok=True)
        choices = t.rename(columns={"foil": "false"})[list(CHOICES_COLUMNS)]
        choices.to_csv(d / "choices.csv", index=False, lineterminator="\n")
        pos = pd.Series(np.arange(len(t)), index=t["filename"].to_numpy())
        c = clicks[clicks["participant"] == name]
        c = c.assign(_t=pos.reindex(c["filename"]).to_numpy()).sort_values(["_t", "order"], kind="stable")
        xy = {k: c[k].astype(np.int64) if np.all(c[k] == np.round(c[k])) else c[k] for k in ("x", "y")}
        pd.DataFrame({"filename": c["filename"], "x_pos": xy["x"], "y_pos": xy["y"], "time": c["time"]}).to_csv(
            d / "clicks.csv", index=False, lineterminator="\n")


# ----------------------------------------------------------------------------- maps
def _trial_mask(x, y, order, valid, n, radius, rate, *, size, reveal, grid, weighting):
    """One trial's mask (size, size) from its padded clicks x, y, order, valid: (K,)."""
    pix = jnp.arange(size)
    first = jnp.full((size, size), jnp.inf, jnp.float32)

    def body(k, first):
        if reveal == "disk":
            p = pix.astype(jnp.float32)
            hit = (p[None, :] - x[k]) ** 2 + (p[:, None] - y[k]) ** 2 < radius**2
        else:
            (rows, cols), cell = grid, lambda v, m: jnp.floor(v * m / size).astype(jnp.int32)
            hit = (((pix * rows) // size == cell(y[k], rows))[:, None]
                   & ((pix * cols) // size == cell(x[k], cols))[None, :])
        return jnp.where(hit & valid[k], jnp.minimum(first, order[k]), first)

    first = jax.lax.fori_loop(0, n, body, first)
    w = {"none": lambda f: jnp.ones_like(f), "inverse_order": lambda f: 1.0 / f,
         "exponential": lambda f: jnp.exp(-rate * (f - 1.0))}[weighting](jnp.where(jnp.isfinite(first), first, 1.0))
    return jnp.where(jnp.isfinite(first), w, 0.0)


_STATIC = ("size", "reveal", "grid", "weighting")


@partial(jax.jit, static_argnames=_STATIC)
def _masks(xs, ys, orders, valid, counts, radius, rate, **static):
    """Masks (T, size, size) of T trials, vmapped; inputs (T, K) and counts (T,)."""
    return jax.vmap(partial(_trial_mask, radius=radius, rate=rate, **static))(xs, ys, orders, valid, counts)


@partial(jax.jit, static_argnames=_STATIC)
def _add_chunk(maps, idx, xs, ys, orders, valid, counts, radius, rate, **static):
    return maps.at[idx].add(_masks(xs, ys, orders, valid, counts, radius, rate, **static))


@jax.jit
def _smooth(maps, g):
    """G M G^T per map: separable Gaussian, zero ('constant') boundary."""
    return jnp.einsum("ij,...jk,lk->...il", g, maps, g, precision=jax.lax.Precision.HIGHEST)


def _gauss(size: int, sigma: float) -> np.ndarray:
    r = int(4.0 * sigma + 0.5)  # truncated at 4 sigma and normalised, as scipy.ndimage
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    d = np.arange(size)[None, :] - np.arange(size)[:, None]
    return np.where(np.abs(d) <= r, (k / k.sum())[np.clip(d + r, 0, 2 * r)], 0.0).astype(np.float32)


def _setup(trials, clicks, size=256, reveal="disk", radius=15.0, grid=None, which="all",
           weighting="none", rate=0.5, sigma=0.0):
    """Check options; select trials; pad clicks to (T, K) -> (trials, arrays, static, dynamic)."""
    if reveal not in ("disk", "tile") or which not in ("all", "correct") or \
            weighting not in ("none", "inverse_order", "exponential") or radius <= 0 or sigma < 0:
        raise ValueError("bad option: reveal disk|tile, which all|correct, weighting "
                         "none|inverse_order|exponential, radius > 0, sigma >= 0")
    if reveal == "tile" and (grid is None or len(grid) != 2 or not 0 < min(grid) <= max(grid) <= size):
        raise ValueError("reveal='tile' needs grid=(rows, cols) with 1 <= rows, cols <= size")
    sel = (trials[trials["correct"].to_numpy(bool)] if which == "correct" else trials).reset_index(drop=True)
    key = sel[["participant", "filename"]].assign(_t=np.arange(len(sel)))
    c = clicks.merge(key, on=["participant", "filename"]).sort_values(["_t", "order"], kind="stable")
    t, k = c["_t"].to_numpy(), c.groupby("_t").cumcount().to_numpy()
    K = int(k.max()) + 1 if len(k) else 1
    arrays = [np.zeros((len(sel) + 1, K), np.float32) for _ in range(3)] + [np.zeros((len(sel) + 1, K), bool)]
    for a, v in zip(arrays, (c["x"].to_numpy(), c["y"].to_numpy(), c["order"].to_numpy(), True)):
        a[t, k] = v
    counts = np.bincount(t, minlength=len(sel) + 1).astype(np.int32)  # last row: an empty trial
    static = {"size": size, "reveal": reveal, "grid": tuple(map(int, grid)) if reveal == "tile" else None,
              "weighting": weighting}
    return sel, arrays + [counts], static, (np.float32(radius), np.float32(rate))


def rasterize(trials, clicks, *, chunk: int = 64, **options):
    """Human maps -> ``(maps, filenames)``: float32 (N_images, size, size), sorted names.

    Options (module docstring has the equations): ``size=256``,
    ``reveal='disk'|'tile'``, ``radius=15`` (disk), ``grid=(rows, cols)`` (tile),
    ``which='all'|'correct'`` (trials used), ``weighting='none'|'inverse_order'|
    'exponential'`` with ``rate=0.5`` (w(k) = exp(-rate (k-1))), ``sigma=0``
    (Gaussian smoothing, zero padding outside the frame, truncated at 4 sigma).
    Every image with a trial gets a map. Trials go through a jit-compiled vmap in
    chunks of ``chunk`` (the last one padded), so memory stays bounded.
    """
    sel, arrays, static, dyn = _setup(trials, clicks, **options)
    filenames = sorted(trials["filename"].unique())
    idx = pd.Index(filenames).get_indexer(sel["filename"])
    order = np.argsort(-arrays[-1][:-1], kind="stable")  # similar click counts share a chunk
    maps = jnp.zeros((len(filenames), static["size"], static["size"]), jnp.float32)
    for start in range(0, len(sel), chunk):
        rows = np.full(chunk, len(sel))  # padding -> the empty trial
        rows[: len(order[start:start + chunk])] = order[start:start + chunk]
        maps = _add_chunk(maps, np.append(idx, 0)[rows], *(a[rows] for a in arrays), *dyn, **static)
    sigma = options.get("sigma", 0.0)
    return np.asarray(_smooth(maps, _gauss(static["size"], sigma)) if sigma > 0 else maps), filenames


def trial_masks(trials, clicks, *, chunk: int = 64, **options):
    """Yield ``(rows, masks)`` chunk by chunk: each trial's own reveal mask, in ``trials`` order.

    ``rows`` (B,) indexes ``trials`` positionally and ``masks`` is float32
    (B, size, size) with B <= ``chunk``: the union of the trial's disks or
    tiles (weighted as ``weighting`` says, never smoothed). This is what the
    participant had uncovered when choosing (see ``ferjax.display.seen``).
    """
    options = {k: v for k, v in options.items() if k not in ("which", "sigma")}
    sel, arrays, static, dyn = _setup(trials, clicks, which="all", **options)
    for start in range(0, len(sel), chunk):
        n = min(chunk, len(sel) - start)
        rows = np.full(chunk, len(sel))  # padding -> the empty trial, so shapes never change
        rows[:n] = np.arange(start, start + n)
        masks = _masks(*(a[rows] for a in arrays), *dyn, **static)
        yield np.arange(start, start + n), np.asarray(masks[:n])


def minmax(maps) -> np.ndarray:
    """(x - min) / (max - min) per map over the last two axes; a constant map -> zeros."""
    m = np.asarray(maps, np.float32)
    lo, hi = m.min(axis=(-2, -1), keepdims=True), m.max(axis=(-2, -1), keepdims=True)
    return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1), 0).astype(np.float32)


def to_distribution(maps) -> np.ndarray:
    """Non-negative maps scaled to sum to 1 per map; an all-zero map -> uniform."""
    m = np.asarray(maps, np.float64)
    if (m < 0).any():
        raise ValueError("to_distribution needs non-negative maps")
    s = m.sum(axis=(-2, -1), keepdims=True)
    return np.where(s > 0, m / np.where(s > 0, s, 1), 1.0 / (m.shape[-1] * m.shape[-2])).astype(np.float32)


def pair_maps(maps, filenames, trials, *, normalize: bool = True):
    """Per ordered (true, foil) pair: sum of its images' maps -> ``(maps (P, H, W), pairs (P, 2))``.

    As the reference did, each image map is min-max normalised first
    (``normalize=False`` sums raw maps). Pairs are sorted by (true, foil).
    """
    info = trials[["filename", "true", "foil"]].drop_duplicates()
    if info["filename"].duplicated().any():
        raise ValueError("an image appears with more than one (true, foil) pair")
    info = info.set_index("filename").reindex(list(filenames))
    if info.isna().any().any():
        raise ValueError("some filenames have no trial")
    pairs, inv = np.unique(info.to_numpy(np.int64), axis=0, return_inverse=True)
    out = np.zeros((len(pairs),) + np.shape(maps)[1:], np.float32)
    np.add.at(out, inv.ravel(), minmax(maps) if normalize else np.asarray(maps, np.float32))
    return out, pairs


# ----------------------------------------------------------------------------- scores
def wilson(k, n, z: float = 1.959964):
    """Wilson score interval (lo, hi) for k successes in n: (p + z^2/2n +- z sqrt(p(1-p)/n
    + z^2/4n^2)) / (1 + z^2/n), p = k/n; NaN where n = 0. Scalars in -> floats out."""
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, d = k / n, 1 + z * z / n
        mid, half = (p + z * z / (2 * n)) / d, z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    lo, hi = np.clip(mid - half, 0, 1), np.clip(mid + half, 0, 1)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


def _hits(trials) -> np.ndarray:
    return trials["correct"].to_numpy(bool) & (trials["count"].to_numpy() > 0)


def score(trials) -> dict:
    """Percent correct (0-click trials wrong) with Wilson 95% intervals.

    Returns DataFrames keyed 'participant', 'image' (filename), 'class' (true),
    'pair' (true, foil) and 'overall': grouping keys + n, correct, accuracy, lo, hi.
    """
    df = trials.assign(_hit=_hits(trials))
    out = {}
    for name, keys in (("participant", ["participant"]), ("image", ["filename"]), ("class", ["true"]),
                       ("pair", ["true", "foil"]), ("overall", [])):
        g = (df.groupby(keys)["_hit"].agg(n="size", correct="sum").reset_index() if keys
             else pd.DataFrame({"n": [len(df)], "correct": [int(df["_hit"].sum())]}))
        g = g.astype({"n": np.int64, "correct": np.int64})
        g["accuracy"] = g["correct"] / g["n"].where(g["n"] > 0)
        g["lo"], g["hi"] = wilson(g["correct"].to_numpy(), g["n"].to_numpy())
        out[name] = g
    return out


def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0 else float("nan")


def pair_stats(trials):
    """Per ordered pair (true, foil): n, accuracy, mean clicks (``count``), mean time; and
    Pearson r across pairs -> ``(table, {'accuracy_time', 'accuracy_clicks', 'clicks_time'})``."""
    t = trials.assign(_hit=_hits(trials)).groupby(["true", "foil"]).agg(
        n=("_hit", "size"), accuracy=("_hit", "mean"), clicks=("count", "mean"), time=("time", "mean")).reset_index()
    return t, {"accuracy_time": _pearson(t["accuracy"], t["time"]),
               "accuracy_clicks": _pearson(t["accuracy"], t["clicks"]),
               "clicks_time": _pearson(t["clicks"], t["time"])}


def _half_maps(masks, halves):
    """masks (B, P, H, W), halves (2, S, P) 0/1 -> the two halves' summed maps (2, S, B, H, W)."""
    return jnp.einsum("hsp,bpxy->hsbxy", halves, masks, precision=jax.lax.Precision.HIGHEST)


@jax.jit
def _half_ranks(masks, halves, g):
    """masks (B, P, H, W), halves (2, S, P) 0/1 -> twice the average ranks (2, S, B, H*W) of half maps."""
    m = _half_maps(masks, halves)
    v = (_smooth(m, g) if g is not None else m).reshape(-1, m.shape[-2] * m.shape[-1])
    s = jnp.sort(v, axis=-1)
    ranks = jax.vmap(lambda s, v: jnp.searchsorted(s, v, "left") + jnp.searchsorted(s, v, "right") + 1)(s, v)
    return ranks.reshape(m.shape[:3] + (-1,))


@partial(jax.jit, static_argnames="bins")
def _half_tables(masks, halves, bins):
    """masks (B, P, H, W) 0/1, halves (2, S, P) 0/1 -> (S, B, bins, bins) joint counts of the half maps' values.

    Unweighted, unsmoothed half maps hold the integers 0..bins-1 (how many of
    the half's participants uncovered a pixel), so two maps are summed up
    exactly by the table of how many pixels take each pair of values.
    """
    m = _half_maps(masks, halves)
    a, b = jnp.round(m).astype(jnp.int32).reshape(2, -1, m.shape[-2] * m.shape[-1])
    t = jax.vmap(partial(jnp.bincount, length=bins * bins))(a * bins + b)
    return t.reshape(*m.shape[1:3], bins, bins)


def _table_spearman(t):
    """Spearman rho from joint counts t (..., K, K) of two integer maps (average ranks for ties); nan if constant.

    With n_k pixels of value k, value k's average rank is N_{<k} + (n_k + 1) / 2;
    rho = sum_ab t_ab ra_a rb_b / sqrt(sum_a n_a ra_a^2 sum_b n_b rb_b^2) with
    the ranks centred on their mean (N + 1) / 2. Exact in float64.
    """
    t = np.asarray(t, np.float64)

    def centred(n):
        return np.cumsum(n, -1) - n + (n + 1) / 2 - (n.sum(-1, keepdims=True) + 1) / 2

    na, nb = t.sum(-1), t.sum(-2)
    ra, rb = centred(na), centred(nb)
    cov = np.einsum("...ij,...i,...j->...", t, ra, rb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt((na * ra * ra).sum(-1) * (nb * rb * rb).sum(-1))


def split_half(trials, clicks, *, n_splits: int = 50, seed: int = 0, chunk: int = 64, **options) -> dict:
    """Split-half reliability of the human maps (same ``options`` as rasterize).

    Each split puts a random half of the participants (``default_rng(seed)``;
    floor(P/2) vs the rest) in A. Per image, Spearman rho between A's and B's
    maps (images where a half map is constant are skipped); r = mean over
    images; r_sb = 2r / (1 + r). Returns {'mean', 'std' (ddof 0), 'values'
    (r_sb per split), 'raw' (r per split)}. Masks are computed once per image
    batch and summed into every split's halves.
    """
    sel, arrays, static, dyn = _setup(trials, clicks, **options)
    people, names = sorted(trials["participant"].unique()), sorted(trials["filename"].unique())
    if len(people) < 2:
        raise ValueError("split_half needs at least 2 participants")
    slot = np.full((len(names), len(people)), len(sel))  # -> the empty trial
    image, person = pd.Index(names).get_indexer(sel["filename"]), pd.Index(people).get_indexer(sel["participant"])
    slot[image, person] = np.arange(len(sel))
    if (np.bincount(slot.ravel(), minlength=len(sel) + 1)[:-1] != 1).any():
        raise ValueError("a participant has two trials of one image")
    rng, halves = np.random.default_rng(seed), np.zeros((2, n_splits, len(people)), np.float32)
    for s in range(n_splits):
        perm = rng.permutation(len(people))
        halves[0, s, perm[: len(people) // 2]], halves[1, s, perm[len(people) // 2:]] = 1, 1
    sigma, batch = options.get("sigma", 0.0), max(1, chunk // len(people))
    g = _gauss(static["size"], sigma) if sigma > 0 else None
    bins = len(people) + 1 if g is None and static["weighting"] == "none" else None  # integer maps
    rho = np.full((n_splits, len(names)), np.nan)
    for start in range(0, len(names), batch):
        rows = np.full((batch, len(people)), len(sel))
        rows[: len(slot[start:start + batch])] = slot[start:start + batch]
        m = _masks(*(a[rows.ravel()] for a in arrays), *dyn, **static).reshape(rows.shape + (static["size"],) * 2)
        if bins:
            r = _table_spearman(_half_tables(m, halves, bins))
        else:
            ra, rb = np.asarray(_half_ranks(m, halves, g), np.float64)
            ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (ra * rb).sum(-1) / np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
        rho[:, start:start + batch] = r[:, : len(names) - start]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = np.nanmean(rho, axis=1)
    sb = 2 * raw / (1 + raw)
    return {"mean": float(np.mean(sb)), "std": float(np.std(sb)), "values": sb, "raw": raw}
