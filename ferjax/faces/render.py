"""Synthetic faces drawn from their action units: the default study's images and AU region masks.

A :class:`ferjax.faces.expressions.Face` (identity, pose, lighting, AU
intensities) is drawn as an image, and every AU's region as a mask.
Geometry lives in a face frame (u, v) in about [-1, 1]^2, u to the viewer's
right and v downwards. A pose (shift, scale, rotation) maps the pixel grid
into that frame, so the AU regions move with the face. Shapes are drawn with
anti-aliased soft edges one pixel wide; lighting is a linear gradient and the
sensor adds Gaussian noise.
"""

from __future__ import annotations

import numpy as np

from ferjax.faces.expressions import AUS, BLEND, REGIONS, STRENGTH, Face, sample_face
from ferjax.faces.labels import NAMES


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
