"""Signal or noise: simultaneous intervals, best sets, cross-fitting, and the verdict on built studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ferjax.analysis import differences, multiverse, ranking, verdict

N_CLASS, PER_CLASS, FRAME = 7, 20, 32


def _study(noise_cam: float, noise_ep: float, seed: int = 0):
    """Human maps with a blob common to every face and one of each face's own; CAM and EP are the human maps
    plus independent noise of the given SDs (equal SDs: the two differ only by noise)."""
    rng = np.random.default_rng(seed)
    n = N_CLASS * PER_CLASS
    y, x = np.mgrid[0:FRAME, 0:FRAME]
    own = rng.uniform(6, FRAME - 6, (n, 2))
    human = np.stack([np.exp(-((x - 16) ** 2 + (y - 12) ** 2) / 40.0) + 0.7 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2)
                                                                                      / 20.0) for cx, cy in own])
    human = human.astype(np.float32)
    noisy = lambda sd: np.clip(human + rng.normal(0, sd, human.shape), 0, None).astype(np.float32)   # noqa: E731
    labels = np.repeat(np.arange(N_CLASS), PER_CLASS)
    foils = (labels + 1 + np.tile(np.arange(PER_CLASS) % (N_CLASS - 1), N_CLASS)) % N_CLASS
    trials = pd.DataFrame({"filename": [f"{c}/{i}.png" for i, c in enumerate(labels)], "true": labels, "foil": foils})
    return human, {"CAM": noisy(noise_cam), "EP": noisy(noise_ep)}, labels, trials


def _verdict(human, methods, labels, trials):
    candidates = {"CAM true": methods["CAM"], "EP 0.1 true": methods["EP"], **ranking.baselines(human)}
    scores = ranking.score(candidates, human)
    grid = multiverse.check_grid({"metric": ["dice@0.05", "dice@0.1", "dice@0.2", "dice@0.3", "spearman"],
                                  "human": ["all"], "map_size": [12, 16, 24, 32], "sigma": [0, 2, 4], "level": ["image"],
                                  "target": ["true"]}, [0.1], ["true"])
    items = []
    variants = multiverse.run({"all": human}, {("CAM", "true"): methods["CAM"], ("EP", "true"): methods["EP"][:, None]},
                              [0.1], list(trials["filename"]), trials, grid, items=items)
    names = multiverse.present(variants)
    calls = differences.variant_calls([s[:, :len(names)] for s in items], names, n_boot=1000)
    robustness = {**multiverse.summarise(variants), **differences.shares(calls, names)}
    return verdict.answer(scores, labels, set(ranking.baselines(human[:2])), robustness=robustness,
                          observers="the simulated participants", n_boot=1000), robustness


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_methods_that_differ_only_by_noise_are_called_tied(seed):
    """In each of three independent studies (a method is clearly first by chance in about 2.5% of variants,
    but variants share their maps, so a study's share is lumpy: 60 variants keep one lucky cluster under 10%)."""
    said, rob = _verdict(*_study(noise_cam=0.6, noise_ep=0.6, seed=seed))
    assert said["ep_vs_cam"]["call"] == "tie" and said["ep_vs_cam"]["lo"] < 0 < said["ep_vs_cam"]["hi"]
    assert "no clear difference: a tie" in said["text"]
    assert rob["variants"] == 60 and rob["clearly_first"]["EP"] < 0.10 and rob["clearly_first"]["CAM"] < 0.10
    assert rob["tie_at_top"] > 0.8
    # the face prior beats both noisy methods: the answer says so first
    assert said["baseline"]["beats_every_method"] and said["text"].startswith("The face prior baseline")


def test_a_real_difference_is_found():
    said, rob = _verdict(*_study(noise_cam=1.2, noise_ep=0.3))
    assert said["ep_vs_cam"]["call"] == "EP" and said["ep_vs_cam"]["lo"] > 0
    assert said["leader"] == "EP" and said["leader_clearly_first"]
    assert "EP fits better" in said["text"]
    assert rob["clearly_first"]["EP"] > 0.8 and rob["clearly_first"]["CAM"] == 0


def test_intervals_cover_at_the_nominal_rate_and_hold_simultaneously():
    """Three methods, no difference: over 200 studies, some pair is wrongly called clear in about 5% of them."""
    rng = np.random.default_rng(1)
    w = differences.boot_weights(60, 500, seed=2)
    wrong = 0
    for _ in range(200):
        item = rng.normal(0, 1, (60, 1))
        r = differences.simultaneous(item + rng.standard_t(5, (60, 3)) * 0.5, w)
        wrong += bool(np.any((r["lo"] > 0) | (r["hi"] < 0)))
    assert 0.01 <= wrong / 200 <= 0.10


def test_identical_and_constant_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 40)
    scores = np.column_stack([a, a, a + 0.5, a + rng.normal(0.02, 0.3, 40)])
    r = differences.simultaneous(scores, differences.boot_weights(40, 300))
    pairs = [tuple(p) for p in r["pairs"]]
    assert r["identical"][pairs.index((0, 1))] and r["constant"][pairs.index((0, 2))]
    k = pairs.index((0, 2))
    assert r["diff"][k] == pytest.approx(-0.5) and r["hi"][k] == pytest.approx(-0.5)   # a constant shift is clear
    top, clear, best = differences.best_set(r, scores.mean(0))
    assert top == 2 and clear and best.tolist() == [False, False, True, False]


def test_the_bootstrap_weights_resample_items():
    w = differences.boot_weights(10, 50, seed=3)
    assert w.shape == (50, 10) and np.allclose(w.sum(1), 1) and np.allclose((w * 10) % 1, 0)


def test_crossfit_scores_each_half_with_the_other_halfs_choice():
    labels = np.repeat([0, 1], 10)
    settings = pd.DataFrame({"a": np.r_[np.ones(10), np.zeros(10)], "b": np.full(20, 0.5)})
    honest, chosen, fold = differences.crossfit(settings, labels, seed=0)
    assert sorted(np.bincount(fold)) == [10, 10] and all(np.bincount(fold[labels == c]).tolist() == [5, 5]
                                                        for c in (0, 1))
    assert chosen == ["a", "a"] and np.array_equal(honest, settings["a"].to_numpy())


def test_variant_calls_share_a_tie_and_credit_identical_twins():
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, (50, 1))
    clear = np.column_stack([base, base, base + 1.0 + rng.normal(0, 0.1, (50, 1))])   # CAM = GradCAM < EP
    twins = np.column_stack([base + 1.0, base + 1.0, base])                               # CAM = GradCAM > EP
    tie = base + rng.normal(0, 1, (50, 3)) * 0.01
    calls = differences.variant_calls([clear, twins, tie], ["CAM", "GradCAM", "EP"], n_boot=300)
    assert calls["clearly_first"].tolist() == [True, True, False]
    assert calls.loc[1, "first"] == "CAM = GradCAM"
    out = differences.shares(calls, ["CAM", "GradCAM", "EP"])
    assert out["clearly_first"] == pytest.approx({"CAM": 1 / 3, "GradCAM": 1 / 3, "EP": 1 / 3})
    assert out["tie_at_top"] == pytest.approx(1 / 3)


def test_the_best_set_read_from_a_pairwise_table_equals_the_direct_one():
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, (80, 1))
    wide = pd.DataFrame(base + rng.normal([0.0, 0.05, 0.3, 0.32], 0.3, (80, 4)), columns=list("abcd"))
    table = differences.pairwise(wide, n_boot=400, seed=1)
    direct = differences.simultaneous(wide.to_numpy(), differences.boot_weights(80, 400, seed=1))
    want = differences.best_set(direct, wide.mean().to_numpy())
    got = differences.best_of_table(table, list("abcd"), wide.mean().to_numpy())
    assert got[:2] == want[:2] and np.array_equal(got[2], want[2]) and got[2].tolist() == [False, False, True, True]


def test_where_a_method_beats_every_baseline_the_first_sentence_still_names_the_best_baseline():
    human, methods, labels, trials = _study(noise_cam=0.05, noise_ep=0.05)
    scores = ranking.score({"CAM true": methods["CAM"], "EP 0.1 true": methods["EP"], **ranking.baselines(human)}, human)
    said = verdict.answer(scores, labels, set(ranking.baselines(human[:2])), n_boot=500)
    assert not said["baseline"]["beats_every_method"] and said["baseline"]["beaten_clearly"]
    assert said["sentences"][0].startswith("The best method setting") and said["baseline"]["name"] in said["text"]
