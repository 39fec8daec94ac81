"""Extremal Perturbation on networks ferjax did not build: ferjax vs TorchRay, same weights, same run.

Networks (64 x 64 x 1 inputs, 8 classes):

* ``lax NHWC``: a 4-layer CNN written with plain ``lax.conv_general_dilated``
  (3x3 convolutions to 16, 32, 64, 64 channels, the middle two stride 2,
  ReLU, global average pooling, affine), as a new user would write it;
* ``lax NCHW``: the same network in PyTorch's layout (NCHW / OIHW);
* ``torch``: the same network as a ``torch.nn.Module``, imported through
  torchax (:mod:`ferjax.networks.importers.torch`);
* ``torch, exported``: that import saved in ferjax's exported format and
  loaded back (what the pipeline runs).

TorchRay runs on the PyTorch module (weights ported from the JAX ones), one
image per call as TorchRay works. Settings as the issue that asked for this
measurement: areas 0.05 and 0.1, ``step=2, sigma=6``, the ``faithful``
(TorchRay's own) schedule, 4 images. ferjax splits the images over the 2
cores as 2 XLA devices; TorchRay is timed with 1 and 2 torch threads.
ferjax is also timed with ``fast_gradients=False`` (the network's own
convolution gradients), which is what a network ferjax did not build got
before :mod:`ferjax.networks.rewrite`.

Each time is a median of ``--runs`` runs after one warm-up call; the
first call's time (tracing and XLA compilation included) is printed beside
it, and the compile time of EP at 800 iterations is measured separately
(``jit(...).lower().compile()``).

Usage: ``python benchmarks/foreign_networks.py [--iters 200] [--runs 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from attribution_speed import import_references, median_time, torch_image  # noqa: E402

from ferjax import sharding  # noqa: E402
from ferjax.explain import activation, perturbation
from ferjax.networks import interface

CHANNELS = ((1, 16, 1), (16, 32, 2), (32, 64, 2), (64, 64, 1))
EP = dict(areas=(0.05, 0.1), step=2, sigma=6)


def jax_network(layout, seed=0):
    rng = np.random.default_rng(seed)
    params = {f"w{i}": jnp.asarray(rng.normal(size=(3, 3, ci, co)) * np.sqrt(2 / (9 * ci)), jnp.float32)
              for i, (ci, co, _) in enumerate(CHANNELS)}
    params["W"] = jnp.asarray(rng.normal(size=(64, 8)) * 0.3, jnp.float32)
    params["b"] = jnp.zeros(8, jnp.float32)

    def features(p, x):
        if layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        for i, (_, _, s) in enumerate(CHANNELS):
            w = p[f"w{i}"] if layout == "NHWC" else p[f"w{i}"].transpose(3, 2, 0, 1)
            spec = (layout, "HWIO" if layout == "NHWC" else "OIHW", layout)
            x = jax.nn.relu(lax.conv_general_dilated(x, w, (s, s), ((1, 1), (1, 1)), dimension_numbers=spec))
        return x if layout == "NHWC" else x.transpose(0, 2, 3, 1)

    def classifier(p, pooled):
        return pooled @ p["W"] + p["b"]

    return params, features, classifier


def torch_module(torch, params):
    """The same CNN in PyTorch, weights ported (HWIO -> OIHW)."""
    layers = []
    for i, (ci, co, s) in enumerate(CHANNELS):
        conv = torch.nn.Conv2d(ci, co, 3, stride=s, padding=1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.asarray(params[f"w{i}"]).transpose(3, 2, 0, 1).copy()))
        layers += [conv, torch.nn.ReLU()]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(*layers)
            self.fc = torch.nn.Linear(64, 8)
            with torch.no_grad():
                self.fc.weight.copy_(torch.from_numpy(np.asarray(params["W"]).T.copy()))
                self.fc.bias.zero_()

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    return Net().eval()


def ferjax_ep(features, head, params, images, targets, iters, fast=True):
    return lambda: activation.extremal_perturbation(features, head, params, images, targets, max_iter=iters,
                                                     fast_gradients=fast, **EP)["masks"]


def compile_seconds(features, head, params, images, targets, iters):
    """(trace, compile) seconds of EP's program at ``iters`` iterations."""
    mesh = sharding.data_mesh(None)
    _, p, x, t, f = sharding.split_batch(mesh, params, images, jnp.asarray(targets, jnp.int32),
                                         jnp.zeros(len(targets), jnp.int32))
    kw = dict(areas=EP["areas"], variant="preserve", perturbation="blur", max_iter=iters, step=EP["step"],
              sigma=float(EP["sigma"]), num_levels=8, max_blur=20.0, jitter=True, reward="score", fast=False,
              mesh=mesh, fast_gradients=True)
    start = time.perf_counter()
    lowered = perturbation._ep.lower(features, interface.as_head(head), p, x, t, f, False, **kw)
    traced = time.perf_counter() - start
    start = time.perf_counter()
    lowered.compile()
    return traced, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200, help="EP iterations of the timed runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args(argv)
    torch = __import__("torch")
    torchray_ep = import_references()[0]
    from ferjax.networks.importers import exported
    from ferjax.networks.importers import torch as torch_importer

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; jax {jax.__version__} on {jax.devices()}; "
          f"torch {torch.__version__}; XLA_FLAGS={os.environ.get('XLA_FLAGS')}")
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.random((args.images, 64, 64, 1)), jnp.float32)
    targets = np.arange(args.images) % 8
    params, features, classifier = jax_network("NHWC")
    module = torch_module(torch, params)
    imported = torch_importer.from_module(module, "features", size=64, channels=1)
    folder = "/tmp/ferjax-benchmark-export"
    exported.save(folder, imported)
    loaded = exported.load(folder)
    nets = {"lax NHWC": (params, features, classifier),
            "lax NCHW": (params, jax_network("NCHW")[1], classifier),
            "torch (torchax)": (imported.params, imported.features, imported.head),
            "torch, exported": (loaded.params, loaded.features, loaded.head)}
    with torch.no_grad():
        want = module(torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())).numpy()
    for name, (p, f, h) in nets.items():
        got = np.asarray(interface.as_head(h)(p, f(p, images)))
        assert np.abs(got - want).max() < 1e-4, (name, np.abs(got - want).max())

    torch_times = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)

        def reference():
            for img, t in zip(np.asarray(images), targets):
                torchray_ep.extremal_perturbation(module, torch_image(torch, img), int(t), max_iter=args.iters,
                                                  areas=list(EP["areas"]), step=EP["step"], sigma=EP["sigma"])
        torch_times[threads] = median_time(reference, args.runs) / args.images
    print(f"TorchRay, {args.iters} iterations, per image: 1 thread {torch_times[1]:.3f} s, "
          f"2 threads {torch_times[2]:.3f} s")
    print(f"{'network':22s} {'first call':>10s} {'per image':>10s} {'vs TorchRay 1t':>15s} {'vs 2t':>7s} "
          f"{'without rewrite':>16s}")
    for name, (p, f, h) in nets.items():
        start = time.perf_counter()
        jax.block_until_ready(ferjax_ep(f, h, p, images, targets, args.iters)())
        first = time.perf_counter() - start
        ours = median_time(ferjax_ep(f, h, p, images, targets, args.iters), args.runs) / args.images
        plain = (median_time(ferjax_ep(f, h, p, images, targets, args.iters, fast=False), args.runs) / args.images
                 if name.startswith("lax") else float("nan"))
        print(f"{name:22s} {first:9.1f}s {ours:9.3f}s {torch_times[1] / ours:14.1f}x {torch_times[2] / ours:6.1f}x "
              + (f"{plain:10.3f}s ({plain / ours:.1f}x)" if np.isfinite(plain) else f"{'':>16s}"))
    for name in ("lax NHWC", "torch, exported"):
        p, f, h = nets[name]
        traced, compiled = compile_seconds(f, h, p, images, targets, 800)
        print(f"compile of EP at 800 iterations, {name}: trace {traced:.1f} s + XLA compile {compiled:.1f} s")


if __name__ == "__main__":
    main()
