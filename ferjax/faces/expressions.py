"""Facial expressions as action units: each class's prototype, and the faces drawn from them.

The default ferjax study cannot download AffectNet, so it renders its own
faces (:mod:`ferjax.faces.render`). Each expression class is an EMFACS-style prototype: a set of action
units (AUs) drawn at random intensities, plus weak "leaked" AUs from outside
the prototype so that classes overlap the way real ones do (fear shares
AU1+2+5+26 with surprise; disgust, anger and contempt share brow and mouth
cues). ``REGIONS`` gives where on the face each AU shows: the ground truth
of where the evidence is.

Faces differ in how clearly they show their expression, as real ones do
(recognition accuracy rises with expression intensity, and the classic
confusions are between expressions that share action units):

* **strength**: each face's prototype AUs are scaled by a factor drawn
  uniformly from ``strength`` (a subtle expression is closer to neutral);
* **blend**: each face takes on part of the configuration of its class's
  nearest other expression (:func:`blend_partner`: the prototype at the
  smallest distance between prototype mid intensities; neutral, which has
  nothing to add, is never a partner), adding ``beta * max(m_partner - x, 0)``
  per AU with ``beta`` uniform in [0, ``blend``]: a fear face that also
  shows some of surprise's brow and jaw is ambiguous between the two.

Both are properties of the face, shared by everyone who looks at it; they
are what makes the same faces hard for every simulated observer
(:mod:`ferjax.people.simulation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferjax.faces.labels import NAMES

AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU12", "AU14", "AU15", "AU20", "AU26")
AU_INDEX = {name: i for i, name in enumerate(AUS)}

# Intensity ranges (low, high) of each class's prototype AUs (EMFACS).
PROTOTYPES = {
    "neutral": {},
    "happy": {"AU6": (0.3, 1.0), "AU12": (0.45, 1.0), "AU26": (0.0, 0.4)},
    "sad": {"AU1": (0.4, 1.0), "AU4": (0.2, 0.7), "AU15": (0.4, 1.0)},
    "surprise": {"AU1": (0.5, 1.0), "AU2": (0.5, 1.0), "AU5": (0.4, 1.0), "AU26": (0.4, 1.0)},
    "fear": {"AU1": (0.4, 1.0), "AU2": (0.3, 0.8), "AU4": (0.2, 0.7), "AU5": (0.4, 1.0),
             "AU20": (0.3, 1.0), "AU26": (0.2, 0.8)},
    "disgust": {"AU9": (0.45, 1.0), "AU15": (0.2, 0.7), "AU26": (0.0, 0.3)},
    "anger": {"AU4": (0.5, 1.0), "AU5": (0.2, 0.7), "AU7": (0.4, 1.0), "AU9": (0.0, 0.3)},
    "contempt": {"AU14": (0.6, 1.0)},
}

# Each AU's region: ellipses (cu, cv, au, av) in the face frame; those with
# mirror=True are repeated at -cu. AU14 is one-sided and handled by `side`.
REGIONS = {
    "AU1": [(0.15, -0.34, 0.18, 0.2, True)],
    "AU2": [(0.33, -0.35, 0.18, 0.2, True)],
    "AU4": [(0.2, -0.26, 0.3, 0.19, True)],
    "AU5": [(0.26, -0.13, 0.22, 0.15, True)],
    "AU6": [(0.28, -0.08, 0.26, 0.18, True)],
    "AU7": [(0.26, -0.12, 0.2, 0.11, True)],
    "AU9": [(0.0, 0.1, 0.16, 0.24, False), (0.0, 0.46, 0.26, 0.12, False)],
    "AU12": [(0.17, 0.42, 0.2, 0.2, True)],
    "AU14": [(0.18, 0.46, 0.2, 0.17, False)],
    "AU15": [(0.17, 0.5, 0.18, 0.17, True)],
    "AU20": [(0.0, 0.48, 0.38, 0.14, False)],
    "AU26": [(0.0, 0.5, 0.28, 0.2, False)],
}


STRENGTH = (0.4, 1.0)  # range of the per-face scale of the prototype AUs
BLEND = 0.5            # largest weight of the nearest other expression's AUs added to a face


def prototype_means() -> np.ndarray:
    """Mid intensity m_c(a) of each AU in each class's prototype, (8, len(AUS))."""
    mids = np.zeros((len(NAMES), len(AUS)))
    for c, name in enumerate(NAMES):
        for au, (lo, hi) in PROTOTYPES[name].items():
            mids[c, AU_INDEX[au]] = (lo + hi) / 2
    return mids


def blend_partner(label: int) -> int:
    """The expression nearest to class ``label``: argmin_c' ||m_label - m_c'||, c' not label or neutral."""
    mids = prototype_means()
    dist = np.linalg.norm(mids - mids[label], axis=1)
    dist[[label, 0]] = np.inf
    return int(np.argmin(dist))


@dataclass(frozen=True)
class Face:
    """One rendered face: its identity, pose and expression parameters."""

    label: int
    intensities: np.ndarray  # (len(AUS),) float, 0 = inactive
    identity: dict
    pose: tuple  # (shift_x, shift_y, scale, angle_radians)
    side: int  # +1 or -1: which mouth corner a one-sided AU14 pulls
    light: tuple  # (strength, angle)


def sample_face(rng: np.random.Generator, label: int, *, leak: float = 0.15,
                leak_prob: float = 0.25, strength=STRENGTH, blend: float = BLEND) -> Face:
    """Draw identity, pose, lighting and AU intensities for one face of class ``label``.

    Prototype AUs get intensities uniform in their range; every other AU
    leaks in with probability ``leak_prob`` at an intensity uniform in
    [0, leak]. Then the prototype AUs are scaled by the face's strength s,
    uniform in ``strength``, and the AUs of the class's blend partner p are
    added with weight beta, uniform in [0, ``blend``]:
    ``x <- x + beta * max(m_p - x, 0)`` (module docstring). Strength and
    blend are drawn last, so that ``strength=(1, 1), blend=0`` gives the
    faces of earlier versions, same identity and pose.
    """
    intensities = np.zeros(len(AUS))
    proto = PROTOTYPES[NAMES[label]]
    for name in AUS:
        if name in proto:
            lo, hi = proto[name]
            intensities[AU_INDEX[name]] = rng.uniform(lo, hi)
        elif rng.random() < leak_prob:
            intensities[AU_INDEX[name]] = rng.uniform(0.0, leak)
    identity = {
        "face_w": rng.uniform(0.56, 0.66), "face_h": rng.uniform(0.74, 0.84),
        "eye_x": rng.uniform(0.22, 0.29), "eye_y": rng.uniform(-0.15, -0.1),
        "brow_gap": rng.uniform(0.14, 0.18), "brow_thick": rng.uniform(0.022, 0.04),
        "brow_arch": rng.uniform(0.0, 0.05), "mouth_y": rng.uniform(0.44, 0.5),
        "mouth_w": rng.uniform(0.16, 0.21), "lip": rng.uniform(0.018, 0.032),
        "hairline": rng.uniform(-0.62, -0.45),
        "skin": rng.uniform(0.35, 0.85) * np.array([1.0, 0.82, 0.7]) + rng.uniform(-0.04, 0.04, 3),
        "hair": rng.uniform(0.04, 0.4) * np.array([1.0, 0.85, 0.7]),
        "background": rng.uniform(0.2, 0.8) * np.ones(3) + rng.uniform(-0.05, 0.05, 3),
    }
    pose = (rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.95, 1.08),
            np.deg2rad(rng.uniform(-6, 6)))
    light = (rng.uniform(0.0, 0.25), rng.uniform(0, 2 * np.pi))
    side = int(rng.choice([-1, 1]))
    s, beta = rng.uniform(*strength), rng.uniform(0.0, blend)
    intensities[[AU_INDEX[name] for name in proto]] *= s
    partner = prototype_means()[blend_partner(label)]
    intensities = np.clip(intensities + beta * np.maximum(partner - intensities, 0.0), 0.0, 1.0)
    return Face(label, intensities, identity, pose, side, light)


def neutral(face: Face) -> Face:
    """The same identity, pose and lighting with every AU off."""
    return Face(0, np.zeros(len(AUS)), face.identity, face.pose, face.side, face.light)
