"""Splits, stimulus selection and the 2AFC trial list.

These follow the reference protocol of Park & Wallraven (2021, STUDY.md):
a fixed set of stimuli per class, shown at 256x256, each with one fixed foil,
balanced so that within a class every other class is the foil for the same
number of images (35 per class gives 5 images for each of the 56 ordered
(true, foil) pairs). The network's training, validation and test images never
include a stimulus.
"""

from __future__ import annotations

import numpy as np

from ferjax.faces.labels import NUM_CLASSES

ROLES = ("train", "val", "test", "stimulus")


def split_roles(labels, *, val: float, test: float, stimuli_per_class: int, seed: int) -> np.ndarray:
    """Assign each image a role in ``ROLES``, stratified by class.

    Per class c with n_c images: ``stimuli_per_class`` become stimuli, then of
    the remaining m_c, round(val * m_c) go to validation and round(test * m_c)
    to test; the rest train. Returns a str array (N,). Deterministic for a
    given ``seed``: class c uses the generator seeded with (seed, c).
    """
    labels = np.asarray(labels)
    roles = np.full(labels.shape, "train", dtype=object)
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        if len(idx) == 0:
            continue
        if len(idx) < stimuli_per_class:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than stimuli_per_class={stimuli_per_class}")
        idx = np.random.default_rng([seed, c]).permutation(idx)
        roles[idx[:stimuli_per_class]] = "stimulus"
        rest = idx[stimuli_per_class:]
        n_val, n_test = round(val * len(rest)), round(test * len(rest))
        roles[rest[:n_val]] = "val"
        roles[rest[n_val:n_val + n_test]] = "test"
    return roles.astype(str)


def assign_foils(labels, *, seed: int) -> np.ndarray:
    """Give each stimulus one fixed foil class, balanced within its class.

    Within class c, the n_c images are shuffled and dealt the 7 other classes
    in turn, so each other class is the foil for floor(n_c / 7) or
    ceil(n_c / 7) images (exactly n_c / 7 when 7 divides n_c, as in the
    reference's 35). Which foil classes get the extra image, when 7 does not
    divide n_c, is itself drawn at random. Returns int (N,).
    """
    labels = np.asarray(labels)
    foils = np.full(labels.shape, -1, dtype=np.int64)
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        if len(idx) == 0:
            continue
        rng = np.random.default_rng([seed, NUM_CLASSES + c])
        others = rng.permutation([k for k in range(NUM_CLASSES) if k != c])
        dealt = np.resize(others, len(idx))
        foils[rng.permutation(idx)] = dealt
    return foils
