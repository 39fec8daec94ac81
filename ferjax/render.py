"""Synthetic faces whose expressions are built from facial action units.

The default ferjax study cannot download AffectNet, so it renders its own
faces. Each expression class is an EMFACS-style prototype: a set of action
units (AUs) drawn at random intensities, plus weak "leaked" AUs from outside
the prototype so that classes overlap the way real ones do (fear shares
AU1+2+5+26 with surprise; disgust, anger and contempt share brow and mouth
cues). Every image comes with the region mask of each active AU: the ground
truth of where the evidence is.

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
(:mod:`ferjax.participants`).

Geometry lives in a face frame (u, v) in about [-1, 1]^2, u to the viewer's
right and v downwards. A pose (shift, scale, rotation) maps the pixel grid
into that frame, so the AU regions move with the face. Shapes are drawn with
anti-aliased soft edges one pixel wide; lighting is a linear gradient and the
sensor adds Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferjax.labels import NAMES

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


def face_frame(size: int, pose) -> tuple[np.ndarray, np.ndarray, float]:
    """Face-frame coordinates (u, v), each (size, size), of the pixel centres, and one pixel's width in u."""
    sx, sy, scale, angle = pose
    centres = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(centres, centres)
    x, y = (x - sx) / scale, (y - sy) / scale
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y, 2.0 / size / scale


def _ellipse(u, v, cu, cv, au, av, px):
    """Soft indicator of the ellipse ((u-cu)/au)^2 + ((v-cv)/av)^2 <= 1, edge one pixel wide.

    The signed distance to the outline is approximated to first order by
    (r - 1) / |grad r|, which keeps thin ellipses sharp along their long axis.
    """
    du, dv = (u - cu) / au, (v - cv) / av
    r = np.sqrt(du**2 + dv**2)
    grad = np.sqrt((du / au) ** 2 + (dv / av) ** 2) / np.maximum(r, 1e-9)
    return np.clip(0.5 - (r - 1.0) / np.maximum(grad, 1e-9) / px, 0.0, 1.0)


def _band(u, v, centre_v, half, lo, hi, px):
    """Soft band |v - centre_v(u)| <= half for lo <= u <= hi."""
    inside = np.clip(0.5 - (np.abs(v - centre_v) - half) / px, 0.0, 1.0)
    return inside * np.clip(0.5 + (u - lo) / px, 0, 1) * np.clip(0.5 + (hi - u) / px, 0, 1)


def _paint(img, alpha, colour):
    """Composite a flat ``colour`` over ``img`` (H, W, 3) with coverage ``alpha`` (H, W)."""
    img *= 1.0 - alpha[..., None]
    img += alpha[..., None] * np.asarray(colour)


def draw(face: Face, size: int) -> np.ndarray:
    """Render ``face`` noise-free as float RGB (size, size, 3) in [0, 1], before lighting."""
    u, v, px = face_frame(size, face.pose)
    idt, a = face.identity, dict(zip(AUS, face.intensities))
    img = np.broadcast_to(idt["background"], (size, size, 3)).copy()
    head = _ellipse(u, v, 0.0, 0.0, idt["face_w"], idt["face_h"], px)
    _paint(img, head, idt["skin"])
    hair = _ellipse(u, v, 0.0, -0.05, idt["face_w"] + 0.05, idt["face_h"] + 0.08, px)
    hair *= np.clip(0.5 - (v - (idt["hairline"] + 0.25 * u**2)) / px, 0, 1)
    _paint(img, hair, idt["hair"])
    dark, skin = 0.35 * idt["skin"], idt["skin"]

    for sgn in (-1.0, 1.0):
        eu, ev = sgn * idt["eye_x"], idt["eye_y"]
        # AU6 raises the cheek (a shadow crescent below the eye); AU7 narrows the lids.
        _paint(img, a["AU6"] * 0.8 * _ellipse(u, v, eu, ev + 0.09, 0.13, 0.05, px), 0.6 * skin)
        _paint(img, a["AU6"] * 0.7 * _ellipse(u, v, eu + sgn * 0.15, ev + 0.02, 0.03, 0.07, px), 0.55 * skin)
        open_v = 0.045 * (1.0 + 1.3 * a["AU5"] - 0.7 * a["AU7"] - 0.35 * a["AU6"])
        _paint(img, _ellipse(u, v, eu, ev, 0.12, open_v + 0.012, px), dark)
        _paint(img, _ellipse(u, v, eu, ev, 0.1, open_v, px), 0.92 * np.ones(3))
        iris = _ellipse(u, v, eu, ev, 0.045, 0.045, px) * _ellipse(u, v, eu, ev, 0.1, open_v, px)
        _paint(img, iris, 0.12 * np.ones(3))
        # Brows: AU1 lifts the inner end, AU2 the outer end, AU4 lowers and draws them in.
        t = np.clip((sgn * u - 0.06) / 0.34, 0.0, 1.0)
        inner_part, outer_part = np.clip(1 - t / 0.6, 0, 1), np.clip((t - 0.4) / 0.6, 0, 1)
        lift = 0.15 * a["AU1"] * inner_part + 0.15 * a["AU2"] * outer_part - 0.1 * a["AU4"] * (1 - 0.6 * t)
        centre = ev - idt["brow_gap"] - idt["brow_arch"] * np.sin(np.pi * t) - lift
        inner = 0.08 - 0.045 * a["AU4"]
        lo, hi = (inner, 0.43) if sgn > 0 else (-0.43, -inner)
        _paint(img, _band(u, v, centre, idt["brow_thick"], lo, hi, px), idt["hair"])
        # AU4's glabella furrows.
        _paint(img, a["AU4"] * 0.9 * _ellipse(u, v, sgn * 0.035, ev - 0.1, 0.012, 0.05, px), dark)

    # Nose bridge and nostrils; AU9 wrinkles the bridge and lifts the nostrils.
    _paint(img, 0.5 * _ellipse(u, v, 0.0, 0.12, 0.02, 0.14, px), 0.8 * skin)
    for k in range(3):
        _paint(img, a["AU9"] * 0.9 * _ellipse(u, v, 0.0, 0.0 + 0.045 * k, 0.08, 0.014, px), dark)
    for sgn in (-1.0, 1.0):
        _paint(img, _ellipse(u, v, sgn * (0.05 + 0.02 * a["AU9"]), 0.26 - 0.035 * a["AU9"], 0.03, 0.018, px), dark)

    # Mouth: corners move with AU12 (up), AU15 (down), AU20 (sideways), AU14 (one side up, dimple).
    my, half_w = idt["mouth_y"], idt["mouth_w"] * (1 + 0.45 * a["AU20"] + 0.15 * a["AU12"])
    s = np.clip(u / half_w, -1.0, 1.0)
    one_side = a["AU14"] * np.clip(face.side * s, 0.0, 1.0)
    corner = -0.13 * a["AU12"] + 0.11 * a["AU15"] - 0.12 * one_side
    curve = corner * s**2 - 0.015 * a["AU9"]
    gap = 0.012 + 0.07 * a["AU26"] * (1 - s**2)
    upper, lower = my + curve - gap / 2, my + curve + gap / 2 + 0.06 * a["AU26"] * (1 - s**2)
    lips_inner = np.clip(0.5 - (np.abs(v - (upper + lower) / 2) - (lower - upper) / 2) / px, 0, 1)
    lips = _band(u, v, (upper + lower) / 2, (lower - upper) / 2 + idt["lip"], -half_w, half_w, px)
    _paint(img, lips, np.array([0.6, 0.3, 0.3]) * idt["skin"].mean() + 0.15)
    _paint(img, lips * lips_inner * np.clip(gap / 0.02, 0.4, 1.0), 0.08 * np.ones(3))
    _paint(img, a["AU14"] * 0.9 * _ellipse(u, v, face.side * (half_w + 0.03), my - 0.02, 0.018, 0.04, px), dark)
    # AU12 deepens the nasolabial folds.
    for sgn in (-1.0, 1.0):
        _paint(img, a["AU12"] * 0.8 * _ellipse(u, v, sgn * 0.17, 0.36, 0.015, 0.08, px), 0.6 * skin)
    return img


def au_masks(face: Face, size: int, *, active_only: bool = True) -> np.ndarray:
    """Boolean region masks (len(AUS), size, size) of the AUs of ``face``.

    With ``active_only`` a mask is all False for an inactive AU; without it,
    every AU's region is drawn (where that AU would show, if it were on).
    """
    u, v, px = face_frame(size, face.pose)
    masks = np.zeros((len(AUS), size, size), bool)
    for i, name in enumerate(AUS):
        if active_only and face.intensities[i] <= 0:
            continue
        for cu, cv, au, av, mirror in REGIONS[name]:
            if name == "AU14":
                cu = face.side * cu
            for c in ((cu, -cu) if mirror else (cu,)):
                masks[i] |= ((u - c) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0
    return masks


def finish(face: Face, img: np.ndarray, rng: np.random.Generator, *, noise: float,
           channels: int) -> np.ndarray:
    """Apply lighting gradient and sensor noise; return uint8 (size, size, channels)."""
    size = img.shape[0]
    strength, angle = face.light
    centres = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(centres, centres)
    img = img * (1.0 + strength * (np.cos(angle) * x + np.sin(angle) * y))[..., None]
    if channels == 1:
        img = img @ np.array([0.299, 0.587, 0.114])[:, None]
    img = img + rng.normal(0.0, noise, img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def render(face: Face, size: int, rng: np.random.Generator, *, noise: float = 0.02,
           channels: int = 1) -> np.ndarray:
    """Render ``face`` as uint8 (size, size, channels) with lighting and noise from ``rng``."""
    return finish(face, draw(face, size), rng, noise=noise, channels=channels)


def neutral(face: Face) -> Face:
    """The same identity, pose and lighting with every AU off."""
    return Face(0, np.zeros(len(AUS)), face.identity, face.pose, face.side, face.light)


def render_study(per_class: int, *, size: int, channels: int, seed: int, noise: float = 0.02,
                 progress=None, strength=STRENGTH, blend: float = BLEND):
    """Render ``per_class`` faces of each of the 8 classes: the default study's face pool.

    Face k of class c is drawn from ``default_rng([seed, c, k])`` (strength and
    blend as :func:`sample_face`), so any one image can be re-rendered alone. Returns ``(images, labels, names,
    intensities, regions)``: uint8 (N, size, size, channels), int (N,),
    names ``<c>/<c>_<k>.png`` (the reference layout), float32 (N, len(AUS)),
    and bool (N, len(AUS), size, size) regions of every AU (active or not;
    AND with ``intensities > 0`` for the active ones).
    """
    images, labels, names, intensities, regions = [], [], [], [], []
    for c in range(len(NAMES)):
        for k in range(per_class):
            rng = np.random.default_rng([seed, c, k])
            face = sample_face(rng, c, strength=strength, blend=blend)
            images.append(render(face, size, rng, noise=noise, channels=channels))
            labels.append(c)
            names.append(f"{c}/{c}_{k:04d}.png")
            intensities.append(face.intensities.astype(np.float32))
            regions.append(au_masks(face, size, active_only=False))
            if progress is not None:
                progress(1)
    return (np.stack(images), np.array(labels), names, np.stack(intensities), np.stack(regions))
