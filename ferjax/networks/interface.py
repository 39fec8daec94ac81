"""A network to explain, as pure functions split at the layer to explain.

Attribution needs two functions and their parameters::

    features(params, images) -> A, shape (N, h, w, K)    the maps of the layer to explain
    head(params, A)          -> logits, shape (N, C)     everything after that layer

Two generalisations, for the networks researchers bring:

* **Values carried across the cut.** Where the rest of the network also
  reads values from before the layer (a transformer block's residual
  stream around its ``norm1``), ``features`` returns a :class:`Cut`
  ``(maps, carry)`` and ``head`` takes it. GradCAM differentiates with
  respect to ``maps`` only, the carried values held fixed, which is what
  pytorch-grad-cam's hooks on that layer compute; CAM needs a head of the
  maps alone and refuses a carry.
* **Tokens.** Maps of shape (N, T, K), a vision transformer's tokens, become
  a grid (N, h, w, K) for CAM and GradCAM through :class:`Tokens`: the
  first ``prefix`` tokens (class, distillation or register tokens) are left
  out of the grid and kept for the head, as pytorch-grad-cam's
  ``reshape_transform`` drops them. By default the grid is the largest
  ``(H / P) x (W / P)`` patch grid of the (H, W) images that leaves at most
  8 prefix tokens.

Any model gives them, whatever built it: a Flax linen or NNX module, a
Haiku function, plain JAX, or a network imported from Keras or PyTorch
(:mod:`ferjax.networks.importers`). ferjax's own networks (:mod:`ferjax.networks.cnn`) end in
global average pooling and an affine classifier, ``classifier(params,
pooled)`` with ``pooled = mean_{h,w} A``; such a classifier is used as it is.
A head that takes the maps themselves is wrapped in :class:`Head`::

    attribution.gradcam(features, Head(head), params, images, targets)

GradCAM and Extremal Perturbation work with any head. CAM needs the head to
be global average pooling followed by an affine map (``y = W^T mean_{h,w} A +
b``); it checks that on random maps and says why when it is not
(:func:`gap_residual`).

Splitting a model at a named layer:

* Flax linen: ``features = lambda p, x: model.apply(p, x, method=Model.features)``
  with the layers up to the split in a ``features`` method and the rest in
  ``head``; or ``model.apply(p, x, capture_intermediates=True)`` and read the
  layer's output, then apply the remaining submodules in ``head``.
* Flax NNX: ``graphdef, state = nnx.split(model)``, then
  ``features = lambda s, x: nnx.merge(graphdef, s).features(x)`` (as
  :mod:`ferjax.networks.cnn` does).
* Haiku: two ``hk.transform``-ed functions sharing one parameter dict,
  ``features = hk.transform(lambda x: trunk(x)).apply`` with ``rng=None``.
* Plain JAX: two Python functions of the same parameter pytree.
* Keras 3 and PyTorch: :mod:`ferjax.networks.importers` splits the model at a named
  layer for you.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Head:
    """The part of a network after the explained layer, as a function of its feature maps.

    ``Head(fn)`` calls ``fn(params, A)`` with A (N, h, w, K). ``Head(fn,
    pooled=True)`` is a classifier of the spatially averaged maps, ``fn(params,
    mean_{h,w} A)``, which is what a bare classifier given to the attribution
    functions means. Heads compare equal when they wrap the same function, so
    jitted attribution compiles once per network.
    """

    fn: Callable
    pooled: bool = False

    def __call__(self, params, maps):
        return self.fn(params, _spatial_mean(maps)) if self.pooled else self.fn(params, maps)


def _spatial_mean(maps):
    """(N, ..., K) -> (N, K): the mean over the grid (h, w) or the tokens."""
    return maps.mean(axis=tuple(range(1, maps.ndim - 1)))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Cut:
    """What crosses the cut when the head needs more than the maps: ``maps`` (N, h, w, K), the layer
    explained, and ``carry``, a tuple of the other values the head reads (held fixed by GradCAM)."""

    maps: Any
    carry: tuple = ()


def maps_of(a):
    """The explained maps of ``features``' output (an array, or a :class:`Cut`)."""
    return a.maps if isinstance(a, Cut) else a


def with_maps(a, maps):
    """``features``' output ``a`` with its maps replaced (the carry kept)."""
    return Cut(maps, a.carry) if isinstance(a, Cut) else maps


@dataclass(frozen=True)
class Tokens:
    """Tokens (N, T, K) as a grid (N, h, w, K): the first ``prefix`` tokens stay out of it.

    ``grid=(h, w)`` and ``prefix`` default to what :meth:`layout` derives
    from T and the image size; ``T = prefix + h w`` must hold.
    """

    grid: tuple | None = None
    prefix: int | None = None

    def layout(self, num_tokens: int, image_hw) -> tuple:
        """``((h, w), prefix)``: the given grid, or the largest patch grid (H / P) x (W / P) of the images
        that leaves between 0 and 8 tokens out."""
        if self.grid is not None:
            h, w = self.grid
            prefix = num_tokens - h * w if self.prefix is None else self.prefix
            if prefix < 0 or prefix + h * w != num_tokens:
                raise ValueError(f"{num_tokens} tokens do not make a {h}x{w} grid after {prefix} prefix tokens")
            return (h, w), prefix
        height, width = image_hw
        for patch in range(1, min(height, width) + 1):
            h, w = height // patch, width // patch
            extra = num_tokens - h * w
            if height % patch == 0 and width % patch == 0 and 0 <= extra <= 8 \
                    and extra == (self.prefix if self.prefix is not None else extra):
                return (h, w), extra
        raise ValueError(f"{num_tokens} tokens are no patch grid of {height}x{width} images; give "
                         "Tokens(grid=(h, w)) (and prefix: the class and other tokens before the patches)")

    def split(self, tokens, image_hw):
        """(N, T, K) -> ``(grid (N, h, w, K), prefix tokens (N, p, K))``."""
        (h, w), prefix = self.layout(tokens.shape[1], image_hw)
        return tokens[:, prefix:].reshape(tokens.shape[0], h, w, tokens.shape[-1]), tokens[:, :prefix]

    @staticmethod
    def merge(maps, prefix_tokens):
        """The inverse of :meth:`split`."""
        return jnp.concatenate([prefix_tokens, maps.reshape(maps.shape[0], -1, maps.shape[-1])], axis=1)


def as_head(head_or_classifier) -> Head:
    """A :class:`Head`, or a classifier of pooled features turned into one."""
    if isinstance(head_or_classifier, Head):
        return head_or_classifier
    if not callable(head_or_classifier):
        raise TypeError(f"the head must be a function or a ferjax.networks.interface.Head, got {type(head_or_classifier)}")
    return Head(head_or_classifier, pooled=True)


def pooled_view(head: Head, spatial):
    """``g(params, z)``: the head on maps equal to z (N, K) everywhere on the grid ``spatial`` ((h, w), or (T,)
    for tokens), so ``g(mean A) = head(A)`` if the head averages its maps first."""
    if head.pooled:
        return head.fn
    return lambda params, z: head.fn(params, jnp.broadcast_to(z.reshape(z.shape[0], *[1] * len(spatial), -1),
                                                              (z.shape[0], *spatial, z.shape[1])))


def gap_residual(head: Head, params, shape):
    """``(error, scale)`` of ``head(A) = head(A's spatial mean everywhere)`` on random maps (traceable).

    Zero for a head that first averages its maps over space (then any
    function of the means); larger for one that looks at where the features
    are (a convolution, a flatten-then-dense layer).
    """
    if head.pooled:
        return jnp.float32(0), jnp.float32(1)
    a = jax.random.normal(jax.random.PRNGKey(1), (2, *shape), jnp.float32)
    ramp = jnp.linspace(-2.0, 2.0, shape[0])   # a spatial gradient, not just noise
    a = a + ramp.reshape(1, -1, *[1] * (len(shape) - 1))
    full = head(params, a)
    flat = pooled_view(head, shape[:-1])(params, _spatial_mean(a))
    return jnp.abs(full - flat).max(), jnp.abs(full).max() + jnp.abs(flat).max()


@dataclass(frozen=True)
class Network:
    """A trained network to explain: its two functions, their parameters, and what it expects.

    ``spec`` records the input (``size``: the side, or [H, W] (:func:`input_hw`); ``channels``; images are float32
    NHWC in [0, 1] and ``features`` applies the network's own normalisation),
    ``labels`` (the network's output index -> AffectNet class, None where it
    has no such class), ``layer`` (where it was split), ``head_params`` (the
    top-level parameter names the head uses: what model randomisation
    re-draws first) and ``source``.
    """

    features: Callable
    head: Head
    params: dict
    spec: dict

    def logits(self, images):
        """The network's logits for images (N, H, W, C) in [0, 1]."""
        return self.head(self.params, self.features(self.params, images))


def input_hw(spec) -> tuple:
    """(H, W) of a network's input from its spec: ``size`` is the side of a square input, or [H, W]."""
    size = spec["size"]
    return (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))


def label_index(labels, num_outputs: int) -> np.ndarray:
    """(8,) int: the network output for each AffectNet class, -1 where the network has none.

    ``labels[i]`` is the AffectNet class of output i (or None); it must list
    each of the network's outputs once and name no class twice.
    """
    labels = list(labels)
    if len(labels) != num_outputs:
        raise ValueError(f"the label map lists {len(labels)} classes but the network has {num_outputs} outputs")
    known = [c for c in labels if c is not None]
    if any(not 0 <= int(c) < 8 for c in known) or len(set(known)) != len(known):
        raise ValueError(f"the label map must name AffectNet classes 0..7 at most once each, got {labels}")
    out = np.full(8, -1, np.int64)
    for i, c in enumerate(labels):
        if c is not None:
            out[int(c)] = i
    return out
