"""Tests for ferjax.explain.sanity: the pointing game and the model-randomisation test.

Hand-placed peaks for the pointing game, and a tiny network trained for a few
seconds on bars (class 0 horizontal, class 1 vertical, anywhere in the image)
whose maps must point at the bar, and stop doing so once the network is
re-initialised.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ferjax.explain import activation, sanity
from ferjax.faces import expressions
from ferjax.networks import cnn, train

# ---------------------------------------------------------------- pointing game


def one_map(peak, value=1.0, shape=(8, 8)):
    m = np.zeros(shape, np.float32)
    m[peak] = value
    return m


def box(r0, r1, c0, c1, shape=(8, 8)):
    r = np.zeros(shape, bool)
    r[r0:r1, c0:c1] = True
    return r


def test_peak_inside_is_a_hit_and_outside_a_miss():
    region = box(2, 4, 2, 4)                    # rows 2-3, cols 2-3
    maps = np.stack([one_map((3, 3)), one_map((5, 5)), one_map((2, 4)), one_map((1, 2))])
    maps[1] += 0.5 * region                     # more mass in the region, but the peak is outside
    hits = sanity.pointing_game(maps, np.stack([region] * 4))
    assert hits.tolist() == [True, False, False, False]
    assert hits.dtype == bool


def test_flat_and_non_finite_maps_are_misses():
    region = np.ones((8, 8), bool)              # every pixel is in the region: only flatness can miss
    maps = np.stack([np.zeros((8, 8)), np.full((8, 8), 0.7), one_map((0, 0), np.nan), one_map((0, 0))])
    assert sanity.pointing_game(maps, np.stack([region] * 4)).tolist() == [False, False, False, True]


def test_ties_need_every_peak_inside_unless_any():
    region = box(0, 2, 0, 2)
    tied = one_map((0, 0)) + one_map((6, 6))    # two maxima of 1: one inside, one outside
    both_in = one_map((0, 0)) + one_map((1, 1))
    maps, regions = np.stack([tied, both_in]), np.stack([region, region])
    assert sanity.pointing_game(maps, regions).tolist() == [False, True]
    assert sanity.pointing_game(maps, regions, ties="any").tolist() == [True, True]


def test_tolerance_is_euclidean_distance_to_the_region():
    region = box(0, 1, 0, 1)                    # the single pixel (0, 0)
    maps = np.stack([one_map((0, 3)), one_map((2, 2)), one_map((3, 3))])   # distances 3, 2.83, 4.24
    regions = np.stack([region] * 3)
    assert sanity.pointing_game(maps, regions, tolerance=2.9).tolist() == [False, True, False]
    assert sanity.pointing_game(maps, regions, tolerance=3).tolist() == [True, True, False]
    assert sanity.pointing_game(maps, regions).tolist() == [False, False, False]


def test_pointing_game_rejects_bad_input():
    maps, regions = np.zeros((2, 8, 8)), np.ones((2, 8, 8), bool)
    with pytest.raises(ValueError, match="same shape"):
        sanity.pointing_game(maps, regions[:, :4])
    with pytest.raises(ValueError, match="same shape"):
        sanity.pointing_game(maps[0], regions[0])
    with pytest.raises(ValueError, match="boolean"):
        sanity.pointing_game(maps, regions.astype(float))
    with pytest.raises(ValueError, match="empty region.*index 1"):
        sanity.pointing_game(maps, np.stack([regions[0], ~regions[1]]))
    with pytest.raises(ValueError, match="ties"):
        sanity.pointing_game(maps, regions, ties="first")


def test_expression_regions_are_the_union_of_the_active_prototype_aus():
    n_au = len(expressions.AUS)
    regions = np.zeros((3, n_au, n_au, n_au), bool)
    for a in range(n_au):
        regions[:, a, a] = True                 # AU a owns row a
    intensities = np.full((3, n_au), 0.1, np.float32)   # every AU active (leaked or not)
    intensities[1, expressions.AU_INDEX["AU26"]] = 0.0       # a prototype AU that is off
    labels = np.array([1, 1, 0])                        # happy, happy, neutral
    out = sanity.expression_regions(regions, intensities, labels)
    rows = lambda i: sorted(np.flatnonzero(out[i].any(1)))  # noqa: E731
    happy = sorted(expressions.AU_INDEX[a] for a in ("AU6", "AU12", "AU26"))
    assert rows(0) == happy
    assert rows(1) == sorted(set(happy) - {expressions.AU_INDEX["AU26"]})
    assert rows(2) == [] and not out[2].any()   # neutral: no AU, empty region
    big = sanity.expression_regions(regions, intensities, labels, size=2 * n_au)
    assert big.shape == (3, 2 * n_au, 2 * n_au) and np.array_equal(big[:, ::2, ::2], out)
    with pytest.raises(ValueError, match="must agree"):
        sanity.expression_regions(regions, intensities[:, :3], labels)


# ---------------------------------------------------------------- randomisation


S = 16


def init(key):
    return cnn.create("tiny", num_classes=2, channels=1, size=S, key=key)[0]


def test_randomize_replaces_exactly_the_chosen_layers():
    params, other = init(jax.random.key(0)), init(jax.random.key(1))
    same = lambda a, b: jax.tree.map(lambda u, v: bool(np.array_equal(u, v)), a, b)  # noqa: E731
    assert all(jax.tree.leaves(same(sanity.randomize(params, init, jax.random.key(1), only=()), params)))
    head = sanity.randomize(params, init, jax.random.key(1), only=("head",))
    assert np.array_equal(head["head"]["kernel"], other["head"]["kernel"])
    assert all(jax.tree.leaves(same(head["convs"], params["convs"])))
    one = sanity.randomize(params, init, jax.random.key(1), only="convs/1")
    assert np.array_equal(one["convs"][1]["conv"]["kernel"], other["convs"][1]["conv"]["kernel"])
    assert np.array_equal(one["convs"][0]["conv"]["kernel"], params["convs"][0]["conv"]["kernel"])
    assert all(jax.tree.leaves(same(sanity.randomize(params, init, jax.random.key(1)), other)))
    with pytest.raises(ValueError, match="no parameter path starts with 'classifier'"):
        sanity.randomize(params, init, jax.random.key(1), only=("classifier",))
    wide = lambda k: cnn.create("tiny", num_classes=3, channels=1, size=S, key=k)[0]  # noqa: E731
    with pytest.raises(ValueError, match="same structure and shapes"):
        sanity.randomize(params, wide, jax.random.key(1))


def test_cascade_keeps_the_upper_random_layers():
    params, other = init(jax.random.key(0)), init(jax.random.key(1))
    levels = sanity.cascade(params, init, jax.random.key(1), [("head", ["head"]), ("top", ["convs/1"]), ("all", None)])
    assert list(levels) == ["head", "top", "all"]
    top = levels["top"]
    assert np.array_equal(top["head"]["kernel"], other["head"]["kernel"])
    assert np.array_equal(top["convs"][1]["conv"]["kernel"], other["convs"][1]["conv"]["kernel"])
    assert np.array_equal(top["convs"][0]["conv"]["kernel"], params["convs"][0]["conv"]["kernel"])
    assert np.array_equal(levels["all"]["convs"][0]["conv"]["kernel"], other["convs"][0]["conv"]["kernel"])


def test_rank_similarity_values_and_errors():
    rng = np.random.default_rng(0)
    a = rng.random((3, 6, 6))
    b = np.stack([a[0], -a[1], np.zeros((6, 6))])
    rho = sanity.rank_similarity(a, b)
    assert rho[0] == pytest.approx(1.0) and rho[1] == pytest.approx(-1.0) and np.isnan(rho[2])
    with pytest.raises(ValueError, match="same shape"):
        sanity.rank_similarity(a, b[:, :5])


def bars(n, seed):
    """Noise with one bright bar of 5 px anywhere: class 0 horizontal, class 1 vertical; the bar's pixels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 50, (n, S, S, 1)).astype(np.uint8)
    where = np.zeros((n, S, S), bool)
    for i, y in enumerate(labels):
        r, c = rng.integers(2, S - 2, 2)
        if y == 0:
            where[i, r, c - 2:c + 3] = True
        else:
            where[i, r - 2:r + 3, c] = True
        images[i][where[i]] = 220
    return images, labels, where


@pytest.fixture(scope="module")
def trained():
    """A tiny network trained for ~4 s on bars, with its test images, labels and bar pixels."""
    x, y, _ = bars(512, 0)
    params, _ = train.train(x, y, model="tiny", num_classes=2, steps=150, batch_size=32, lr=1e-2, warmup=5,
                            augment=False, progress=False, seed=0)
    features, classifier = cnn.functions("tiny", num_classes=2, channels=1)

    def standardised(p, images):
        return features(p, cnn.preprocess(images))

    tx, ty, where = bars(64, 1)
    images = tx.astype(np.float32) / 255.0
    correct = np.asarray(cnn.logits(standardised, classifier, params, images)).argmax(1) == ty
    assert correct.mean() > 0.9
    return params, standardised, classifier, images, ty, where, correct


def test_trained_maps_point_at_the_bar_and_random_ones_do_not(trained):
    params, features, classifier, images, labels, where, correct = trained
    cam = np.asarray(activation.cam(features, classifier, params, images, labels))
    # The 8x8 feature grid of a 16 px image places peaks to within a pixel: 0.95 measured (0.47 with
    # tolerance 0); chance, the share of pixels within 1 px of the bar, is about 0.07.
    assert sanity.pointing_game(cam[correct], where[correct], tolerance=1).mean() >= 0.85
    rnd = sanity.randomize(params, init, jax.random.key(3))
    cam_rnd = np.asarray(activation.cam(features, classifier, rnd, images, labels))
    assert sanity.pointing_game(cam_rnd[correct], where[correct], tolerance=1).mean() < 0.5


def test_randomisation_changes_cam_and_gradcam(trained):
    params, features, classifier, images, labels, _, _ = trained
    levels = {"same": [sanity.randomize(params, init, jax.random.key(0), only=())], "head": [], "all": []}
    for d in range(3):
        drawn = sanity.cascade(params, init, jax.random.fold_in(jax.random.key(0), d),
                               [("head", ["head"]), ("all", None)])
        levels["head"].append(drawn["head"])
        levels["all"].append(drawn["all"])
    explain = {name: (lambda p, fn=fn: fn(features, classifier, p, images, labels))
               for name, fn in (("CAM", activation.cam), ("GradCAM", activation.gradcam))}
    result = sanity.randomization_test(explain, params, levels)
    for name in explain:
        assert result[name]["same"]["spearman"] == pytest.approx(1.0, abs=1e-6)
        assert result[name]["same"]["constant"] == 0 and result[name]["same"]["maps"] == len(images)
        assert len(result[name]["head"]["draws"]) == 3
        assert result[name]["head"]["spearman"] < 0.5
        assert result[name]["all"]["spearman"] < 0.5
        assert result[name]["all"]["spearman"] == pytest.approx(np.mean(result[name]["all"]["draws"]))
    with pytest.raises(ValueError, match="list of parameter draws"):
        sanity.randomization_test(explain, params, {"all": levels["all"][0]})
