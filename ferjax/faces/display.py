"""What a participant sees: the reference display, as arrays.

Park & Wallraven (2021) showed each face at 256x256 in grayscale, blurred
with a 70x70 box filter; every click uncovered a disk of the original colour
image, and the uncovered disks added up over the trial (STUDY.md). This
module rebuilds that view from a trial's reveal mask, so that a network can
be asked to choose from exactly what the person saw.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

LUMA = (0.299, 0.587, 0.114)


def grayscale(images):
    """ITU-R 601 luma of RGB images (..., H, W, 3) -> (..., H, W, 1); grayscale input passes through."""
    if images.shape[-1] == 1:
        return images
    return jnp.tensordot(images, jnp.asarray(LUMA, images.dtype), axes=([-1], [0]))[..., None]


def _box_axis(x, size: int, axis: int):
    """Mean over a window of ``size`` along ``axis``: samples i - size//2 .. i + size - size//2 - 1.

    The image is mirrored at its edges without repeating the edge sample
    (d c b | a b c d | c b a: OpenCV's default BORDER_REFLECT_101, scipy's
    'mirror'). Computed from a cumulative sum, so the cost does not grow with
    ``size``.
    """
    before, after = size // 2, size - size // 2 - 1
    pad = [(0, 0)] * x.ndim
    pad[axis] = (before, after)
    padded = jnp.pad(x, pad, mode="reflect")
    c = jnp.cumsum(padded, axis=axis)
    c = jnp.concatenate([jnp.zeros_like(jnp.take(c, jnp.array([0]), axis=axis)), c], axis=axis)
    n = x.shape[axis]
    upper = jax.lax.slice_in_dim(c, size, size + n, axis=axis)
    lower = jax.lax.slice_in_dim(c, 0, n, axis=axis)
    return (upper - lower) / size


@partial(jax.jit, static_argnames="size")
def box_blur(images, size: int = 70):
    """Box-filter images (..., H, W, C) with a size x size window (reference: 70), mirrored edges."""
    return _box_axis(_box_axis(images, size, images.ndim - 3), size, images.ndim - 2)


@partial(jax.jit, static_argnames="blur")
def seen(images, masks, *, blur: int = 70):
    """The view a participant had when choosing.

    out = m * I + (1 - m) * B(gray(I)), with m the trial's reveal mask
    clipped to [0, 1], I the image (N, H, W, C) in [0, 1], and B the
    ``blur`` x ``blur`` box filter. masks: (N, H, W). Returns (N, H, W, C).
    """
    m = jnp.clip(masks, 0.0, 1.0)[..., None]
    hidden = box_blur(grayscale(images), blur)
    return m * images + (1.0 - m) * jnp.broadcast_to(hidden, images.shape)
