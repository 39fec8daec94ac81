"""Ranking methods against human maps: baselines, scores, intervals and tests."""

import numpy as np
import pandas as pd

from ferjax.analysis import mapops, ranking


def _maps(n=12, size=24, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    centres = rng.uniform(4, size - 4, (n, 2))
    human = np.stack([np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 18.0) for cx, cy in centres])
    return human.astype(np.float32), centres


def test_baselines_shapes_and_leave_one_out():
    human, _ = _maps()
    base = ranking.baselines(human, seed=1)
    assert set(base) == {"center", "face prior", "shuffled"}
    for maps in base.values():
        assert maps.shape == human.shape
    norm = (human - human.min((1, 2), keepdims=True)) / np.ptp(human, (1, 2), keepdims=True)
    np.testing.assert_allclose(base["face prior"][0], norm[1:].mean(0), atol=1e-6)
    # The shuffled baseline never gives an image its own map.
    for i in range(len(human)):
        assert not np.array_equal(base["shuffled"][i], human[i])
    assert base["center"][0].argmax() in (11 * 24 + 11, 11 * 24 + 12, 12 * 24 + 11, 12 * 24 + 12)


def test_a_perfect_method_ranks_first_and_beats_baselines():
    human, centres = _maps()
    rng = np.random.default_rng(2)
    methods = {"perfect": human, "noisy": human + rng.normal(0, 0.3, human.shape).astype(np.float32),
               **ranking.baselines(human)}
    points = np.round(centres)[:, None, :].astype(int)
    scores = ranking.score(methods, human, points)
    assert set(scores["metric"]) >= {"dice@0.1", "spearman", "kld", "nss", "auc_judd", "iou@0.3"}
    table = ranking.summarise(scores, ceiling=0.8, n_boot=200)
    dice = table[table.metric == "dice@0.1"].set_index("method")
    assert dice.loc["perfect", "rank"] == 1 and dice.loc["perfect", "mean"] == 1.0
    assert dice.loc["noisy", "mean"] > dice.loc["shuffled", "mean"]
    assert dice.loc["shuffled", "p_wilcoxon_holm"] < 0.05
    kld = table[table.metric == "kld"].set_index("method")
    assert kld.loc["perfect", "rank"] == 1  # lower is better
    spear = table[table.metric == "spearman"].set_index("method")
    assert spear.loc["perfect", "alignment"] == 1.0 / 0.8
    assert (table["lo"] <= table["mean"] + 1e-9).all() and (table["mean"] <= table["hi"] + 1e-9).all()


def test_pair_level_sums_normalised_image_maps():
    human, _ = _maps(n=4)
    trials = pd.DataFrame({"participant": "a", "filename": ["0/a", "0/b", "1/c", "1/d"], "true": [0, 0, 1, 1],
                           "foil": [1, 1, 0, 0], "chosen": [0, 0, 1, 1], "correct": True, "time": 1.0,
                           "count": 1})
    pairs, keys = mapops.pair_maps(human, ["0/a", "0/b", "1/c", "1/d"], trials)
    assert pairs.shape == (2, 24, 24)
    norm = human / human.max((1, 2), keepdims=True)
    got = dict(zip(map(tuple, np.asarray(keys)), pairs))
    np.testing.assert_allclose(got[(0, 1)], norm[0] + norm[1], atol=1e-2)
