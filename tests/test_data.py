"""Splits, the balanced foil assignment and resizing."""

import numpy as np
import pytest

from ferjax.faces import images, selection


def test_split_roles_are_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(8), 50)
    roles = selection.split_roles(labels, val=0.1, test=0.2, stimuli_per_class=10, seed=1)
    for c in range(8):
        r = roles[labels == c]
        assert (r == "stimulus").sum() == 10
        assert (r == "val").sum() == 4 and (r == "test").sum() == 8 and (r == "train").sum() == 28
    again = selection.split_roles(labels, val=0.1, test=0.2, stimuli_per_class=10, seed=1)
    other = selection.split_roles(labels, val=0.1, test=0.2, stimuli_per_class=10, seed=2)
    assert list(roles) == list(again) and list(roles) != list(other)


def test_split_roles_rejects_too_few_images():
    with pytest.raises(ValueError, match="class 3"):
        selection.split_roles(np.array([3, 3]), val=0, test=0, stimuli_per_class=5, seed=0)


def test_foils_are_balanced_as_in_the_reference():
    labels = np.repeat(np.arange(8), 35)
    foils = selection.assign_foils(labels, seed=0)
    assert (foils != labels).all()
    pairs = np.zeros((8, 8), int)
    np.add.at(pairs, (labels, foils), 1)
    off = ~np.eye(8, dtype=bool)
    assert (pairs[off] == 5).all() and (pairs[~off] == 0).all()


def test_foils_balanced_within_one_when_seven_does_not_divide():
    labels = np.repeat(np.arange(8), 10)
    foils = selection.assign_foils(labels, seed=3)
    for c in range(8):
        counts = np.bincount(foils[labels == c], minlength=8)
        others = np.delete(counts, c)
        assert counts[c] == 0 and others.max() - others.min() <= 1 and others.sum() == 10


def test_resize_masks_keeps_alignment():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 1, 2] = True
    big = images.resize_masks(masks, 16)
    assert big.sum() == 16 and big[0, 4:8, 8:12].all()


def test_resize_keeps_channel_axis():
    image = np.full((8, 8, 1), 100, np.uint8)
    out = images.resize_image(image, 32)
    assert out.shape == (32, 32, 1) and (out == 100).all()
