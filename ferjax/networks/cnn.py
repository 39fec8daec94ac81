"""CNNs with a CAM-compatible head, as pairs of pure functions.

Every network is ``conv features -> global average pool -> affine classifier``,
so a class activation map is ``features(params, x) @ W[:, c]`` with the
classifier's weights. :func:`create` builds a network with Flax NNX and
returns its parameters as a plain nested dict of arrays with two pure
functions::

    params, features, classifier = create("fine", num_classes=8, channels=1, size=64, key=key)
    f = features(params, images)            # (N, h, w, K), images NHWC float32
    z = classifier(params, f.mean((1, 2)))  # (N, C) logits

Both functions rebuild the module from ``params`` with ``nnx.merge``, so they
can be jitted, vmapped (one network per class pair, stacked params) and
differentiated like any JAX function. None of the networks keeps BatchNorm
statistics: ``tiny`` has no normalisation, ``small``, ``fine`` and ``resnet18`` use
GroupNorm. With ``dtype=jnp.bfloat16`` the convolutions compute in bfloat16
while the parameters stay float32; features and logits come back float32.

Sizes:

* ``tiny``: two small convolutions, for tests;
* ``small``: five 3x3 convolutions (16, 32, 64, 128, 128 channels, three of
  them stride 2), 24M multiply-adds per image at 64 px; maps at 1/8 of the
  input side (8x8), each cell seeing 33 px;
* ``fine`` (the default for the 64x64 synthetic faces): five 3x3
  convolutions (16, 32, 48, 64, 64 channels, two of them stride 2), 25M
  multiply-adds; maps at 1/4 of the side (16x16), each cell seeing 25 px. At
  the same cost as ``small`` its CAM resolves single action units: on a
  64-px face ``small``'s cell is as wide as a mouth corner and the cheek
  above it together, so the peak falls between them;
* ``resnet18``: ResNet-18 with GroupNorm for real data at 224 or 256 RGB;
  maps at 1/32 of the side.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ferjax.networks import conv
from ferjax.plumbing import devices, distributed
from ferjax.plumbing.errors import InputError

# (channels, stride) of each 3x3 convolution of the plain networks
PLAIN = {"tiny": ((8, 1), (16, 2)),
         "small": ((16, 1), (32, 2), (64, 2), (128, 2), (128, 1)),
         "fine": ((16, 1), (32, 2), (48, 2), (64, 1), (64, 1))}
NAMES = ("tiny", "small", "fine", "resnet18")
MIN_SIZE = {"tiny": 4, "small": 8, "fine": 4, "resnet18": 32}


def _groups(width):
    return min(32, width // 4) if width >= 8 else 1


class _ConvNormAct(nnx.Module):
    def __init__(self, cin, cout, *, kernel=3, stride=1, norm=True, act=True, dtype, rngs):
        self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding="SAME",
                             use_bias=not norm, dtype=dtype, rngs=rngs,
                             conv_general_dilated=conv.conv_general_dilated)
        self.norm = nnx.GroupNorm(cout, num_groups=_groups(cout), dtype=dtype, rngs=rngs) if norm else None
        self.act = act

    def __call__(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return nnx.relu(x) if self.act else x


class _Plain(nnx.Module):
    """A stack of 3x3 convolutions (``(width, stride)`` per layer)."""

    def __init__(self, layers, *, channels, num_classes, norm, dtype, rngs):
        convs, cin = [], channels
        for width, stride in layers:
            convs.append(_ConvNormAct(cin, width, stride=stride, norm=norm, dtype=dtype, rngs=rngs))
            cin = width
        self.convs = nnx.List(convs) if hasattr(nnx, "List") else convs
        self.head = nnx.Linear(cin, num_classes, dtype=dtype, rngs=rngs)

    def features(self, x):
        for layer in self.convs:
            x = layer(x)
        return x

    def classifier(self, pooled):
        return self.head(pooled)


class _Block(nnx.Module):
    """ResNet basic block with GroupNorm and a projection shortcut when the shape changes."""

    def __init__(self, cin, cout, stride, *, dtype, rngs):
        self.a = _ConvNormAct(cin, cout, stride=stride, dtype=dtype, rngs=rngs)
        self.b = _ConvNormAct(cout, cout, act=False, dtype=dtype, rngs=rngs)
        self.short = (_ConvNormAct(cin, cout, kernel=1, stride=stride, act=False, dtype=dtype, rngs=rngs)
                      if stride != 1 or cin != cout else None)

    def __call__(self, x):
        skip = x if self.short is None else self.short(x)
        return nnx.relu(self.b(self.a(x)) + skip)


class _ResNet18(nnx.Module):
    def __init__(self, *, channels, num_classes, dtype, rngs):
        self.stem = _ConvNormAct(channels, 64, kernel=7, stride=2, dtype=dtype, rngs=rngs)
        blocks, cin = [], 64
        for i, width in enumerate((64, 128, 256, 512)):
            for j in range(2):
                blocks.append(_Block(cin, width, 2 if (i > 0 and j == 0) else 1, dtype=dtype, rngs=rngs))
                cin = width
        self.blocks = nnx.List(blocks) if hasattr(nnx, "List") else blocks
        self.head = nnx.Linear(cin, num_classes, dtype=dtype, rngs=rngs)

    def features(self, x):
        x = self.stem(x)
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for block in self.blocks:
            x = block(x)
        return x

    def classifier(self, pooled):
        return self.head(pooled)


def _build(name, num_classes, channels, dtype, key):
    rngs = nnx.Rngs(params=key)
    common = dict(channels=channels, num_classes=num_classes, dtype=dtype, rngs=rngs)
    if name in PLAIN:
        return _Plain(PLAIN[name], norm=name != "tiny", **common)
    return _ResNet18(**common)


def _features(graphdef, params, images):
    return nnx.merge(graphdef, params).features(images).astype(jnp.float32)


def _classifier(graphdef, params, pooled):
    return nnx.merge(graphdef, params).classifier(pooled).astype(jnp.float32)


def create(name, *, num_classes, channels, size, key, dtype=jnp.float32):
    """Build network ``name``; return ``(params, features, classifier)``.

    ``params`` is a nested dict of float32 arrays; ``features(params, images)``
    maps NHWC float32 images of side ``size`` to ``(N, h, w, K)`` feature maps
    and ``classifier(params, pooled)`` maps ``(N, K)`` pooled features to
    ``(N, num_classes)`` logits. ``dtype`` is the compute type (float32 or
    bfloat16).
    """
    if name not in NAMES:
        raise InputError("--model", None, f"unknown model {name!r}", f"choose one of {', '.join(NAMES)}")
    if int(size) < MIN_SIZE[name]:
        raise InputError("--size", None, f"{size} px is too small for model {name!r}",
                         f"use at least {MIN_SIZE[name]}")
    if int(num_classes) < 2 or int(channels) < 1:
        raise InputError("--model", None, f"need num_classes >= 2 and channels >= 1, got {num_classes}, {channels}")
    _, state = nnx.split(_build(name, int(num_classes), int(channels), jnp.dtype(dtype), key))
    params = nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state.to_pure_dict()
    return (params, *functions(name, num_classes=int(num_classes), channels=int(channels), dtype=dtype))


@functools.lru_cache(maxsize=None)
def functions(name, *, num_classes, channels, dtype=jnp.float32):
    """The pure ``(features, classifier)`` of a network, without initialising parameters."""
    abstract = nnx.eval_shape(lambda: _build(name, num_classes, channels, jnp.dtype(dtype), jax.random.key(0)))
    graphdef, _ = nnx.split(abstract)
    return functools.partial(_features, graphdef), functools.partial(_classifier, graphdef)


def logits(features, classifier, params, x):
    """Class logits of images ``x``: the classifier applied to the pooled features."""
    return classifier(params, features(params, x).mean((1, 2)))


def count(params):
    """Number of parameters."""
    return sum(int(p.size) for p in jax.tree.leaves(params))


def preprocess(images):
    """uint8 (or [0, 1] float) NHWC images -> standardised float32."""
    x = images.astype(jnp.float32)
    if jnp.issubdtype(images.dtype, jnp.integer):
        x = x / 255.0
    return (x - 0.5) / 0.25


_COMPILED = {}


def apply(params, images, name, *, num_classes, stacked=False, dtype=jnp.float32, chunk=256):
    """Logits of uint8 images (``preprocess`` applied) in fixed-size chunks split over the devices: ``(N, C)``.

    With ``stacked`` params (one network per leading index, e.g. class pairs)
    returns ``(networks, N, C)``, running the networks one after another.
    """
    images = np.asarray(images)
    fs = functions(name, num_classes=num_classes, channels=int(images.shape[-1]), dtype=dtype)
    if (fs, stacked) not in _COMPILED:
        def one(p, x):
            return logits(*fs, p, preprocess(x))
        _COMPILED[fs, stacked] = jax.jit((lambda p, x: jax.lax.map(lambda q: one(q, x), p)) if stacked else one)
    fn, out = _COMPILED[fs, stacked], []
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        padded = np.concatenate([part, np.repeat(part[-1:], chunk - len(part), 0)]) if len(part) < chunk else part
        # images are independent: each chunk is split over the visible devices
        _, params, padded = devices.split_batch(None, params, padded)
        out.append(distributed.to_host(fn(params, padded))[..., :len(part), :])
    return np.concatenate(out, axis=-2)
