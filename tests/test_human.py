"""Tests for ferjax.people.clickmaps: log loading and validation, maps, scores, split-half."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ferjax.analysis import mapops, stats
from ferjax.people import accuracy, clicklogs, clickmaps, reliability
from ferjax.plumbing.errors import InputError

S = 32  # small frame for hand-computable maps

TRIALS = pd.DataFrame({
    "participant": ["a", "a", "a", "b", "b", "b"],
    "filename": ["0/x.jpg", "1/y.jpg", "2/z.jpg", "0/x.jpg", "1/y.jpg", "2/z.jpg"],
    "true": [0, 1, 2, 0, 1, 2], "foil": [1, 2, 0, 1, 2, 0], "chosen": [0, 2, 2, 0, 1, 0],
    "correct": [True, False, True, True, True, False], "time": [1.5, 2.0, 0.0, 3.0, 1.0, 2.5],
    "count": [3, 1, 0, 2, 2, 1]})
CLICKS = pd.DataFrame({
    "participant": ["a", "a", "a", "a", "b", "b", "b", "b", "b"],
    "filename": ["0/x.jpg", "0/x.jpg", "0/x.jpg", "1/y.jpg", "0/x.jpg", "0/x.jpg", "1/y.jpg", "1/y.jpg", "2/z.jpg"],
    "order": [1, 2, 3, 1, 1, 2, 1, 2, 1],
    "x": [0.0, 4.0, 31.0, 10.0, 3.0, 20.0, 10.0, 12.0, 16.0],
    "y": [5.0, 5.0, 31.0, 10.0, 5.0, 0.0, 10.0, 10.0, 16.0],
    "time": [0.0, 0.5, 1.2, 0.0, 0.0, 0.7, 0.0, 0.4, 0.0]})


def _expected(trials, clicks, covers, weight=lambda order: 1.0, which="all"):
    """Plain-loop maps: for each trial, each pixel takes the weight of its first covering click."""
    names = sorted(trials["filename"].unique())
    out = np.zeros((len(names), S, S), np.float32)
    for _, t in trials.iterrows():
        if which == "correct" and not t["correct"]:
            continue
        cs = clicks[(clicks.participant == t.participant) & (clicks.filename == t.filename)].sort_values("order")
        for r in range(S):
            for c in range(S):
                for _, k in cs.iterrows():
                    if covers(k.x, k.y, r, c):
                        out[names.index(t.filename), r, c] += np.float32(weight(k.order))
                        break
    return out, names


def disk(radius):
    return lambda x, y, r, c: (c - x) ** 2 + (r - y) ** 2 < radius**2


def test_disk_maps_match_pixel_count():
    maps, names = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=5)
    want, want_names = _expected(TRIALS, CLICKS, disk(5))
    assert names == want_names and maps.dtype == np.float32 and maps.shape == (3, S, S)
    np.testing.assert_array_equal(maps, want)
    assert maps[0, 5, 0] == 2 and maps[0, 5, 2] == 2 and maps.max() == 2  # overlap counts once per trial
    assert maps[2].sum() == 0 or maps[2, 16, 16] == 1
    correct, _ = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=5, which="correct")
    np.testing.assert_array_equal(correct, _expected(TRIALS, CLICKS, disk(5), which="correct")[0])


def test_chunking_does_not_change_maps():
    a, _ = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=7, chunk=2)
    b, _ = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=7, chunk=64)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("grid", [(4, 4), (3, 5)])
def test_tile_maps_match_pixel_count(grid):
    rows, cols = grid

    def cover(x, y, r, c):
        return r * rows // S == math.floor(y * rows / S) and c * cols // S == math.floor(x * cols / S)

    maps, _ = clickmaps.rasterize(TRIALS, CLICKS, size=S, reveal="tile", grid=grid)
    np.testing.assert_array_equal(maps, _expected(TRIALS, CLICKS, cover)[0])
    if grid == (4, 4):
        assert maps[0, :8, :8].min() == 2 and maps[0, 24:, 24:].min() == 1


def test_weighting_takes_first_click():
    t = TRIALS.iloc[:1]
    c = CLICKS.iloc[:2]  # clicks 1 at (0, 5) and 2 at (4, 5) overlap
    inv, _ = clickmaps.rasterize(t, c, size=S, radius=5, weighting="inverse_order")
    exp, _ = clickmaps.rasterize(t, c, size=S, radius=5, weighting="exponential", rate=0.7)
    assert inv[0, 5, 2] == 1.0 and inv[0, 5, 8] == 0.5 and inv[0, 20, 20] == 0
    assert exp[0, 5, 2] == 1.0 and exp[0, 5, 8] == pytest.approx(math.exp(-0.7))
    np.testing.assert_allclose(inv[0], _expected(t, c, disk(5), lambda k: 1 / k)[0][0])


def test_sigma_matches_scipy_constant_mode():
    from scipy.ndimage import gaussian_filter
    raw, _ = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=5)
    smooth, _ = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=5, sigma=2.0)
    want = np.stack([gaussian_filter(m.astype(np.float64), 2.0, mode="constant") for m in raw])
    np.testing.assert_allclose(smooth, want, atol=1e-5)


def test_helpers():
    m = np.stack([np.full((4, 4), 3.0), np.arange(16.0).reshape(4, 4)])
    n = mapops.minmax(m)
    assert n[0].max() == 0 and n[1].min() == 0 and n[1].max() == 1
    d = mapops.to_distribution(m)
    np.testing.assert_allclose(d.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    assert np.allclose(mapops.to_distribution(np.zeros((1, 2, 2))), 0.25)
    maps, names = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=5)
    pm, pairs = mapops.pair_maps(maps, names, TRIALS)
    assert pairs.tolist() == [[0, 1], [1, 2], [2, 0]]
    np.testing.assert_allclose(pm, mapops.minmax(maps))
    pm_raw, _ = mapops.pair_maps(maps, names, TRIALS, normalize=False)
    np.testing.assert_array_equal(pm_raw, maps)


def test_wilson_and_score():
    lo, hi = stats.wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert stats.wilson(0, 5)[0] == 0 and stats.wilson(5, 5)[1] == 1
    s = accuracy.score(TRIALS)
    over = s["overall"].iloc[0]
    # Correct trials: a/x, a/z (0 clicks: scored wrong), b/x, b/y -> 3 of 6.
    assert over["n"] == 6 and over["correct"] == 3 and over["accuracy"] == 0.5
    assert (over["lo"], over["hi"]) == stats.wilson(3, 6)
    part = s["participant"].set_index("participant")
    assert part.loc["a", "correct"] == 1 and part.loc["b", "correct"] == 2
    assert list(s["pair"].columns) == ["true", "foil", "n", "correct", "accuracy", "lo", "hi"]
    assert set(s) == {"participant", "image", "class", "pair", "overall"}
    assert s["image"].set_index("filename").loc["2/z.jpg", "correct"] == 0
    table, corr = accuracy.pair_stats(TRIALS)
    assert len(table) == 3 and set(corr) == {"accuracy_time", "accuracy_clicks", "clicks_time"}
    want = np.corrcoef(table["clicks"], table["time"])[0, 1]
    assert corr["clicks_time"] == pytest.approx(want)


def test_split_half_perfect_agreement():
    people = [f"p{i}" for i in range(4)]
    t = pd.concat([TRIALS[TRIALS.participant == "b"].assign(participant=p) for p in people], ignore_index=True)
    c = pd.concat([CLICKS[CLICKS.participant == "b"].assign(participant=p) for p in people], ignore_index=True)
    out = reliability.split_half(t, c, n_splits=5, seed=1, size=S, radius=5)
    assert out["values"].shape == (5,)
    assert out["mean"] == pytest.approx(1.0, abs=1e-9) and out["std"] == pytest.approx(0.0, abs=1e-9)
    noisy = reliability.split_half(TRIALS, CLICKS, n_splits=3, size=S, radius=5, sigma=1.0)
    assert -1 <= noisy["mean"] <= 1


@pytest.mark.parametrize("options", [{}, {"weighting": "inverse_order"}, {"sigma": 1.5}])
def test_split_half_matches_scipy_spearman(options):
    from scipy.stats import spearmanr
    shifted = {"c": ("a", 1.0, 0.0), "d": ("b", 0.0, 2.0)}
    t = pd.concat([TRIALS] + [TRIALS[TRIALS.participant == src].assign(participant=p)
                              for p, (src, _, _) in shifted.items()], ignore_index=True)
    c = pd.concat([CLICKS] + [CLICKS[CLICKS.participant == src].assign(participant=p, x=lambda d, dx=dx: d.x + dx,
                                                                         y=lambda d, dy=dy: d.y + dy)
                              for p, (src, dx, dy) in shifted.items()], ignore_index=True)
    out = reliability.split_half(t, c, n_splits=3, seed=4, size=S, radius=5, **options)
    rng, people = np.random.default_rng(4), np.array(["a", "b", "c", "d"])
    for s in range(3):
        perm = rng.permutation(4)
        halves = [clickmaps.rasterize(t[t.participant.isin(people[h])], c, size=S, radius=5, **options)[0]
                  for h in (perm[:2], perm[2:])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(*halves)]
        r = np.nanmean(rho)
        assert out["raw"][s] == pytest.approx(r, abs=1e-6)
        assert out["values"][s] == pytest.approx(2 * r / (1 + r), abs=1e-6)
    assert out["mean"] == pytest.approx(out["values"].mean())


# ----------------------------------------------------------------------------- files
def write_reference(root, trials=TRIALS, clicks=CLICKS, dates=None):
    clicklogs.save_reference(trials, clicks, root, dates or {"a": "210301", "b": "210302"})
    return root


def test_reference_layout_round_trip(tmp_path):
    root = write_reference(tmp_path / "logs")
    assert sorted(p.name for p in root.iterdir()) == ["210301_a", "210302_b"]
    text = (root / "210301_a" / "choices.csv").read_text().splitlines()
    assert text[0] == "filename,true,false,chosen,correct,time,count" and text[1].endswith(",True,1.5,3")
    assert (root / "210301_a" / "clicks.csv").read_text().splitlines()[:2] == ["filename,x_pos,y_pos,time", "0/x.jpg,0,5,0.0"]
    t, c = clicklogs.load_logs(root)
    assert list(t.columns) == list(clicklogs.TRIAL_COLUMNS) and list(c.columns) == list(clicklogs.CLICK_COLUMNS)
    assert t.dtypes.astype(str).tolist() == ["str", "str", "int64", "int64", "int64", "bool", "float64", "int64"]
    assert c.dtypes.astype(str).tolist() == ["str", "str", "int64", "float64", "float64", "float64"]
    pd.testing.assert_frame_equal(t, TRIALS.astype({"participant": "str", "filename": "str"}))
    pd.testing.assert_frame_equal(c, CLICKS.astype({"participant": "str", "filename": "str"}))


def test_participant_name_and_order_from_file(tmp_path):
    d = tmp_path / "250101_p_07"
    d.mkdir()
    pd.DataFrame({"filename": ["3/q.png", "4/r.png"], "true": [3, 4], "false": [4, 3], "chosen": [3, 3],
                  "correct": ["True", "False"], "time": [2.0, 1.0], "count": [2, 1]}).to_csv(d / "choices.csv", index=False)
    pd.DataFrame({"filename": ["3/q.png", "4/r.png", "3/q.png"], "x_pos": [1, 2, 3], "y_pos": [4, 5, 6],
                  "time": [0.0, 0.0, 0.3]}).to_csv(d / "clicks.csv", index=False)
    t, c = clicklogs.load_logs(tmp_path)
    assert set(t.participant) == {"p_07"}
    assert c["order"].tolist() == [1, 1, 2] and c["x"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tidy_round_trip(tmp_path, fmt):
    t0, c0 = clicklogs.load_logs(write_reference(tmp_path / "logs"))
    clicklogs.save_tidy(t0, c0, tmp_path / "tidy", fmt=fmt)
    assert sorted(p.name for p in (tmp_path / "tidy").iterdir()) == [f"clicks.{fmt}", f"trials.{fmt}"]
    for src in (tmp_path / "tidy", tmp_path / "tidy" / f"trials.{fmt}", tmp_path / "tidy" / f"clicks.{fmt}"):
        t, c = clicklogs.load_logs(src)
        pd.testing.assert_frame_equal(t, t0)
        pd.testing.assert_frame_equal(c, c0)


def test_save_tidy_failure_leaves_nothing(tmp_path):
    with pytest.raises(KeyError):
        clicklogs.save_tidy(TRIALS, CLICKS.drop(columns="order"), tmp_path / "tidy")
    assert not (tmp_path / "tidy").exists() or not any((tmp_path / "tidy").iterdir())


def _edit(root, who, name, fn):
    path = root / who / name
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(df)
    df.to_csv(path, index=False)
    return path


def _set(column, row, value):
    def fn(df):
        df.loc[row - 1, column] = value
    return fn


BAD = [  # (file, edit, row, message fragment)
    ("clicks.csv", _set("x_pos", 2, "32"), 2, "outside"),
    ("clicks.csv", _set("y_pos", 1, "-1"), 1, "outside"),
    ("clicks.csv", _set("filename", 4, "5/new.jpg"), 4, "no trial"),
    ("clicks.csv", _set("time", 3, "0.1"), 3, "backwards"),
    ("clicks.csv", _set("time", 1, "-0.5"), 1, "negative"),
    ("clicks.csv", _set("x_pos", 3, "abc"), 3, "x_pos"),
    ("choices.csv", _set("filename", 2, "0/x.jpg"), 2, "twice"),
    ("choices.csv", _set("chosen", 1, "5"), 1, "neither"),
    ("choices.csv", _set("true", 3, "8"), 3, "outside"),
    ("choices.csv", _set("false", 2, "-1"), 2, "outside"),
    ("choices.csv", _set("false", 1, "0"), 1, "both"),
    ("choices.csv", _set("correct", 2, "yes"), 2, "correct"),
    ("choices.csv", _set("correct", 1, "False"), 1, "disagrees"),
    ("choices.csv", _set("time", 3, "-2"), 3, "negative"),
    ("choices.csv", _set("count", 1, "1.5"), 1, "count"),
]


@pytest.mark.parametrize("name,edit,row,fragment", BAD)
def test_bad_rows_name_file_participant_row(tmp_path, name, edit, row, fragment):
    root = write_reference(tmp_path / "logs")
    path = _edit(root, "210301_a", name, edit)
    with pytest.raises(InputError) as err:
        clicklogs.load_logs(root, size=S)
    text = str(err.value)
    assert str(path) in text and "participant a" in text and f"row {row}" in text and fragment in text


@pytest.mark.parametrize("name,column", [("choices.csv", "chosen"), ("clicks.csv", "y_pos")])
def test_missing_column(tmp_path, name, column):
    root = write_reference(tmp_path / "logs")
    path = _edit(root, "210302_b", name, lambda df: df.pop(column))
    with pytest.raises(InputError, match="missing column") as err:
        clicklogs.load_logs(root)
    assert str(path) in str(err.value) and "participant b" in str(err.value) and column in str(err.value)


@pytest.mark.parametrize("name", ["choices.csv", "clicks.csv"])
def test_missing_file(tmp_path, name):
    root = write_reference(tmp_path / "logs")
    (root / "210302_b" / name).unlink()
    with pytest.raises(InputError, match="not found") as err:
        clicklogs.load_logs(root)
    assert str(root / "210302_b" / name) in str(err.value) and "participant b" in str(err.value)


def test_no_participant_folders(tmp_path):
    with pytest.raises(InputError, match="no participant folders"):
        clicklogs.load_logs(tmp_path)
    with pytest.raises(InputError, match="not found"):
        clicklogs.load_logs(tmp_path / "absent")


def test_participant_in_two_folders(tmp_path):
    root = write_reference(tmp_path / "logs")
    (root / "210301_a").rename(root / "210309_b")
    write_reference(root, TRIALS[TRIALS.participant == "b"], CLICKS[CLICKS.participant == "b"], {"b": "210301"})
    with pytest.raises(InputError, match="'b' is in two folders"):
        clicklogs.load_logs(root)


def test_bad_tidy_rows_and_columns(tmp_path):
    clicklogs.save_tidy(TRIALS, CLICKS.assign(x=CLICKS.x.where(CLICKS.index != 6, 99.0)), tmp_path / "t", fmt="csv")
    with pytest.raises(InputError) as err:
        clicklogs.load_logs(tmp_path / "t", size=S)
    assert str(tmp_path / "t" / "clicks.csv") in str(err.value) and "participant b, row 7" in str(err.value)
    clicklogs.save_tidy(TRIALS, CLICKS.assign(order=[1, 2, 2, 1, 1, 2, 1, 2, 1]), tmp_path / "o")
    with pytest.raises(InputError, match="participant a, row 3.*1, 2, ..., n"):
        clicklogs.load_logs(tmp_path / "o", size=S)
    clicklogs.save_tidy(TRIALS, CLICKS, tmp_path / "c", fmt="csv")
    TRIALS.drop(columns="time").to_csv(tmp_path / "c" / "trials.csv", index=False)
    with pytest.raises(InputError, match="columns must be exactly"):
        clicklogs.load_logs(tmp_path / "c")


def test_count_mismatch_warns_and_zero_clicks_kept(tmp_path):
    root = write_reference(tmp_path / "logs", TRIALS.assign(count=[3, 2, 0, 1, 2, 1]))
    with pytest.warns(UserWarning, match="2 trial"):
        t, _ = clicklogs.load_logs(root, size=S)
    assert len(t) == 6 and (t["count"] == 0).sum() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clicklogs.load_logs(write_reference(tmp_path / "ok"), size=S)


def test_trial_masks_sum_to_the_image_maps():
    maps, names = clickmaps.rasterize(TRIALS, CLICKS, size=S, radius=4)
    total = np.zeros_like(maps)
    seen_rows = []
    for rows, masks in clickmaps.trial_masks(TRIALS, CLICKS, size=S, radius=4, chunk=4):
        seen_rows.extend(rows)
        for r, m in zip(rows, masks):
            total[names.index(TRIALS.filename.iloc[r])] += m
    assert seen_rows == list(range(len(TRIALS)))
    np.testing.assert_array_equal(total, maps)
