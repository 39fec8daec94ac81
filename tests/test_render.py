"""The synthetic faces: AU regions cover the pixels each AU changes, and rendering is reproducible."""

import numpy as np
import pytest

from ferjax.faces import expressions, render
from ferjax.faces.render import AUS, Face


def _with_aus(face, values):
    return Face(face.label, np.asarray(values, float), face.identity, face.pose, face.side, face.light)


@pytest.mark.parametrize("au", AUS)
def test_each_au_region_covers_the_pixels_it_changes(au):
    rng = np.random.default_rng(7)
    size = 96
    for _ in range(12):
        face = expressions.sample_face(rng, 0)
        base = render.draw(expressions.neutral(face), size)
        on = np.zeros(len(AUS))
        on[AUS.index(au)] = 1.0
        posed = _with_aus(face, on)
        changed = np.abs(render.draw(posed, size) - base).max(-1) > 2 / 255
        mask = render.au_masks(posed, size)[AUS.index(au)]
        assert changed.sum() > 10, f"{au} changes almost nothing"
        assert (changed & mask).sum() / changed.sum() >= 0.97
        # A region is local: well under a fifth of the image.
        assert mask.mean() < 0.2


@pytest.mark.parametrize("label", range(8))
def test_expression_changes_lie_in_the_active_au_regions(label):
    rng = np.random.default_rng(label)
    for _ in range(6):
        face = expressions.sample_face(rng, label)
        expressive, plain = render.draw(face, 64), render.draw(expressions.neutral(face), 64)
        changed = np.abs(expressive - plain).max(-1) > 2 / 255
        union = render.au_masks(face, 64).any(0)
        if changed.sum():
            assert (changed & union).sum() / changed.sum() >= 0.97
        inactive = face.intensities == 0
        assert not render.au_masks(face, 64)[inactive].any()


def test_prototype_aus_are_active_and_change_the_face():
    rng = np.random.default_rng(3)
    weakest = expressions.STRENGTH[0]
    for label, name in enumerate(render.NAMES):
        face = expressions.sample_face(rng, label)
        for au, (lo, hi) in expressions.PROTOTYPES[name].items():
            assert weakest * lo <= face.intensities[AUS.index(au)] <= 1.0
        if label:
            diff = np.abs(render.draw(face, 64) - render.draw(expressions.neutral(face), 64)).max()
            assert diff > 0.05


def test_render_study_is_reproducible_and_seeded():
    a = render.render_study(2, size=32, channels=1, seed=5)
    b = render.render_study(2, size=32, channels=1, seed=5)
    c = render.render_study(2, size=32, channels=1, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(a[0], c[0])
    images, labels, names, intensities, regions = a
    assert images.shape == (16, 32, 32, 1) and images.dtype == np.uint8
    assert list(labels) == [c for c in range(8) for _ in range(2)]
    assert names[3] == "1/1_0001.png"
    assert regions.shape == (16, len(AUS), 32, 32) and intensities.shape == (16, len(AUS))


def test_renders_256_rgb_like_the_reference_stimuli():
    rng = np.random.default_rng(0)
    face = expressions.sample_face(rng, 1)
    image = render.render(face, 256, rng, channels=3)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    # Colour, not three copies of a grey image.
    assert np.abs(image[..., 0].astype(int) - image[..., 2]).mean() > 5
    assert render.au_masks(face, 256).shape == (len(AUS), 256, 256)


def test_identities_differ_and_noise_is_present():
    rng = np.random.default_rng(0)
    f1, f2 = expressions.sample_face(rng, 0), expressions.sample_face(rng, 0)
    assert f1.identity["eye_x"] != f2.identity["eye_x"]
    img = render.render(f1, 64, np.random.default_rng(1), noise=0.02)
    clean = render.render(f1, 64, np.random.default_rng(1), noise=0.0)
    assert 1.0 < np.abs(img.astype(float) - clean).mean() < 10.0


def test_strength_and_blend_are_drawn_last_and_do_what_they_say():
    for label in range(8):
        seed = np.random.default_rng([4, label])
        plain = expressions.sample_face(np.random.default_rng([4, label]), label, strength=(1.0, 1.0), blend=0.0)
        face = expressions.sample_face(seed, label)
        # the same identity, pose and lighting as a face without strength and blend
        assert plain.identity.keys() == face.identity.keys() and plain.pose == face.pose and plain.side == face.side
        for au, (lo, hi) in expressions.PROTOTYPES[render.NAMES[label]].items():
            assert lo <= plain.intensities[AUS.index(au)] <= hi
        # blending adds part of the partner's missing AUs, never more than the largest weight allows
        partner = expressions.prototype_means()[expressions.blend_partner(label)]
        blended = expressions.sample_face(np.random.default_rng([4, label]), label, strength=(1.0, 1.0), blend=0.7)
        gap = np.maximum(partner - plain.intensities, 0)
        assert np.all(blended.intensities >= plain.intensities - 1e-12)
        assert np.all(blended.intensities <= plain.intensities + 0.7 * gap + 1e-12)
        assert np.all(blended.intensities[gap == 0] == plain.intensities[gap == 0])
        # strength scales the prototype's own AUs only
        half = expressions.sample_face(np.random.default_rng([4, label]), label, strength=(0.5, 0.5), blend=0.0)
        own = [AUS.index(au) for au in expressions.PROTOTYPES[render.NAMES[label]]]
        np.testing.assert_allclose(half.intensities[own], 0.5 * plain.intensities[own])
        others = np.setdiff1d(np.arange(len(AUS)), own)
        np.testing.assert_array_equal(half.intensities[others], plain.intensities[others])


def test_blend_partners_are_the_nearest_other_expressions():
    assert expressions.blend_partner(4) == 3 and expressions.blend_partner(3) == 4      # fear <-> surprise
    assert expressions.blend_partner(0) == 7                                       # neutral -> contempt
    assert all(expressions.blend_partner(c) not in (0, c) for c in range(8))
