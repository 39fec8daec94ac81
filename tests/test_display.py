"""The reference display: 70x70 box blur of the grayscale face, original where uncovered."""

import numpy as np
import pytest
from scipy import ndimage

from ferjax.faces import display


@pytest.mark.parametrize("size", [1, 4, 7, 70])
def test_box_blur_matches_scipy_mirror_uniform_filter(size):
    rng = np.random.default_rng(size)
    images = rng.random((2, 96, 80, 1)).astype(np.float32)
    got = np.asarray(display.box_blur(images, size))
    want = ndimage.uniform_filter(images.astype(np.float64), size=(1, size, size, 1), mode="mirror")
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_box_blur_hand_value():
    # A single bright pixel in the middle of a 9x9 image, window 3: it spreads over 3x3 with weight 1/9.
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 4, 0] = 9.0
    out = np.asarray(display.box_blur(image, 3))[0, ..., 0]
    assert np.allclose(out[3:6, 3:6], 1.0) and np.isclose(out.sum(), 9.0)


def test_seen_shows_the_original_only_where_uncovered():
    rng = np.random.default_rng(0)
    images = rng.random((1, 64, 64, 3)).astype(np.float32)
    mask = np.zeros((1, 64, 64), np.float32)
    mask[0, 10:20, 30:40] = 1.0
    view = np.asarray(display.seen(images, mask, blur=7))
    np.testing.assert_allclose(view[0, 10:20, 30:40], images[0, 10:20, 30:40], atol=1e-6)
    outside = view[0, 40:, :]
    assert np.allclose(outside[..., 0], outside[..., 1]) and np.allclose(outside[..., 1], outside[..., 2])
    gray = np.asarray(display.box_blur(display.grayscale(images), 7))
    np.testing.assert_allclose(view[0, 40:, :, 0], gray[0, 40:, :, 0], atol=1e-6)


def test_seen_with_full_mask_is_the_image_and_masks_clip():
    images = np.random.default_rng(1).random((2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(display.seen(images, np.full((2, 16, 16), 3.0), blur=5)), images,
                               atol=1e-6)
