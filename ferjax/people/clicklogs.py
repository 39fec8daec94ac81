"""Click logs: read and write the reference program's layout and ferjax's tidy tables.

The reference program writes ``<root>/<yymmdd>_<participant>/`` with
``choices.csv`` (filename,true,false,chosen,correct,time,count) and
``clicks.csv`` (filename,x_pos,y_pos,time). ferjax's tidy format is two tables:
trials (participant, filename, true, foil, chosen, correct, time, count) and
clicks (participant, filename, order, x, y, time), order = 1, 2, ... per trial.
Reading checks every row; bad input raises :class:`InputError` naming the
file, the participant and the 1-based data row.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ferjax.faces.labels import NUM_CLASSES
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.files import atomic_path

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
