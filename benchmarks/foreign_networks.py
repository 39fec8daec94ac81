"""Networks ferjax did not build, called as a user calls them: ferjax vs TorchRay and pytorch-grad-cam, same weights.

Run with no environment variables (``python benchmarks/foreign_networks.py``): ferjax then uses one XLA CPU
device per core by itself (:mod:`ferjax.plumbing.devices`). Rendered 64-px faces; networks with 8 classes,
random weights:

* ``lax``: a 4-layer CNN of plain ``lax.conv_general_dilated`` (3x3 to 16, 32, 64, 64 channels, the middle two
  stride 2, ReLU, global average pooling, affine; 1 channel), as a new user writes it;
* ``resnet``: ``models/torch/expression_cnn.py`` (a stem, three residual blocks with BatchNorm, 1x1 stride-2
  shortcuts, each ending in ``F.relu(out + shortcut)``; 3 channels), imported through torchax and cut at its
  last block (``blocks[-1]``).

TorchRay runs on the same weights in torch, one image per call as it works, with 1 torch thread and with one
per core; the ratio is against the faster. Extremal Perturbation: areas 0.05 and 0.1, ``step=2, sigma=6``,
TorchRay's own (faithful) schedule, ``--iters`` iterations, ``--images`` images. GradCAM: a batch of
``--batch`` at the last layer, against pytorch-grad-cam. Every time is a median of ``--runs`` runs (ferjax's
and pytorch-grad-cam's after one warm-up call); the first call is recorded too, and its compile as the time it
took beyond a warm call's. Achieved GFLOP/s (XLA's cost analysis of the compiled program) stand beside the
machine's measured float32 matmul rate. ``--fidelity-images`` more images compare the masks' rewards, each scored the
way TorchRay scores its own (its blur pyramid, the torch network).

Writes benchmarks/foreign_networks.json (benchmarks/record.py) and prints the figures.
Usage: ``python benchmarks/foreign_networks.py [--iters 800] [--runs 3] [--images 4] [--batch 64]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/ helpers; models/ at the repository root; tests/ for the torchvision stand-in (conftest.py)
sys.path[:0] = [HERE, os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import record  # noqa: E402
from attribution_speed import flops_of, import_references, pearson, timed, torch_image  # noqa: E402
from jax import lax  # noqa: E402

from ferjax.explain import activation, perturbation  # noqa: E402
from ferjax.explain import masks as ep_masks  # noqa: E402
from ferjax.faces import expressions, render  # noqa: E402
from ferjax.networks import interface  # noqa: E402
from ferjax.plumbing import devices  # noqa: E402

CHANNELS = ((1, 16, 1), (16, 32, 2), (32, 64, 2), (64, 64, 1))
EP = dict(areas=(0.05, 0.1), step=2, sigma=6)


def faces(n, channels, seed):
    """n rendered 64-px faces, float32 (N, 64, 64, channels) in [0, 1], one expression after another."""
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        out.append(render.render(expressions.sample_face(rng, k % 8), 64, rng, channels=channels))
    return np.stack(out).astype(np.float32) / 255


def lax_network(torch, seed=0):
    """``(params, features, classifier)`` of the plain-lax CNN, and the same network as a torch module."""
    rng = np.random.default_rng(seed)
    params = {f"w{i}": jnp.asarray(rng.normal(size=(3, 3, ci, co)) * np.sqrt(2 / (9 * ci)), jnp.float32)
              for i, (ci, co, _) in enumerate(CHANNELS)}
    params.update(W=jnp.asarray(rng.normal(size=(64, 8)) * 0.3, jnp.float32), b=jnp.zeros(8, jnp.float32))

    def features(p, x):
        for i, (_, _, s) in enumerate(CHANNELS):
            x = jax.nn.relu(lax.conv_general_dilated(x, p[f"w{i}"], (s, s), ((1, 1), (1, 1)),
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return x

    layers = []
    for i, (ci, co, s) in enumerate(CHANNELS):
        conv = torch.nn.Conv2d(ci, co, 3, stride=s, padding=1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.asarray(params[f"w{i}"]).transpose(3, 2, 0, 1).copy()))
        layers += [conv, torch.nn.ReLU()]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.fc = torch.nn.Sequential(*layers), torch.nn.Linear(64, 8)
            with torch.no_grad():
                self.fc.weight.copy_(torch.from_numpy(np.asarray(params["W"]).T.copy()))
                self.fc.bias.zero_()

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    return (params, features, lambda p, z: z @ p["W"] + p["b"]), Net().eval(), lambda m: m.features[-1]


def resnet(torch):
    from models.torch import expression_cnn

    from ferjax.networks.importers import torch as importer

    torch.manual_seed(0)
    module = expression_cnn.randomise(expression_cnn.ExpressionCNN(channels=3))
    net = importer.from_module(module, "blocks[-1]", size=64, channels=3)
    return (net.params, net.features, net.head), module, lambda m: m.blocks[-1]


def matmul_rate(runs=5, n=2048):
    """The machine's float32 matmul rate, GFLOP/s (one jitted n x n product; XLA uses every core)."""
    a, b = (jax.random.normal(jax.random.PRNGKey(k), (n, n), jnp.float32) for k in (1, 2))
    mm = jax.jit(lambda a, b: a @ b)
    mm(a, b).block_until_ready()
    return 2 * n ** 3 / timed(lambda: mm(a, b).block_until_ready(), runs)[0] / 1e9


def reference_times(torch, fn, runs, warm_up=True):
    """{threads: median seconds} of ``fn`` with 1 torch thread and with one per core."""
    out = {}
    for threads in sorted({1, devices.cores()}):
        torch.set_num_threads(threads)
        if warm_up:
            fn()
        out[str(threads)] = timed(fn, runs)[0]
    return out


def ep_flops_per_image(features, head, params, image, target, iters):
    """XLA counts a loop body once: one image on one device, (program - blur pyramid) x iterations + pyramid."""
    one = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    prog = jax.jit(lambda p, x: perturbation.extremal_perturbation(features, head, p, x, [target], mesh=one,
                                                                 max_iter=iters, **EP)["masks"])
    f_prog = flops_of(prog.lower(params, image[None]).compile())
    f_pyr = flops_of(jax.jit(lambda im: ep_masks.pyramid(im, 8, 20.0, "blur")).lower(image).compile())
    return (f_prog - f_pyr) * iters + f_pyr


def torchray_ep(tr, torch, module, images, targets, iters):
    """TorchRay's masks (N, A, H, W) and last-iteration rewards (N, A), one image per call."""
    out = [tr.extremal_perturbation(module, torch_image(torch, x), int(t), max_iter=iters,
                                    areas=list(EP["areas"]), step=EP["step"], sigma=EP["sigma"])
           for x, t in zip(images, targets)]
    return np.stack([m.numpy()[:, 0] for m, _ in out]), np.stack([h[:, 0, -1].numpy() for _, h in out])


def scored_by_torchray(tr, torch, module, images, targets, masks):
    """(N, A) rewards of masks (N, A, H, W) as TorchRay scores a mask: the torch network's logit on the image
    perturbed through TorchRay's own blur pyramid."""
    out = []
    with torch.no_grad():
        for x, t, m in zip(images, targets, masks):
            pert = tr.Perturbation(torch_image(torch, x), num_levels=8, max_blur=20)
            out.append(module(pert.apply(torch.from_numpy(np.asarray(m)[:, None].copy())))[:, int(t)].numpy())
    return np.stack(out)


def ep_case(name, jax_net, module, args, torch, tr, peak):
    params, features, head = jax_net
    c = 1 if name == "lax" else 3
    images = faces(args.images, c, seed=1)
    targets = np.arange(args.images) % 8
    with torch.no_grad():
        want = module(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    got = np.asarray(interface.as_head(head)(params, features(params, images)))
    assert np.abs(got - want).max() <= 1e-4 * np.ptp(want), (name, np.abs(got - want).max())

    def ours():
        return jax.block_until_ready(perturbation.extremal_perturbation(features, head, params, images, targets,
                                                                      max_iter=args.iters, **EP))
    start = time.perf_counter()
    first = ours()
    first_call = time.perf_counter() - start
    runs = timed(ours, args.runs)[0]
    ours_s = runs / args.images
    # TorchRay compiles nothing: no warm-up call (at 800 iterations it would add minutes)
    ref = reference_times(torch, lambda: torchray_ep(tr, torch, module, images, targets, args.iters), args.runs,
                          warm_up=False)
    ref = {k: v / args.images for k, v in ref.items()}
    ref_masks, ref_reward = torchray_ep(tr, torch, module, images, targets, args.iters)
    flops = ep_flops_per_image(features, head, params, images[0], int(targets[0]), args.iters)
    ours_masks = np.asarray(first["masks"])
    # the first call's tracing and compiling: its time beyond a warm call's (jit caches what lower() would compile)
    return {"first_call_s": first_call, "compile_s": first_call - runs,
            "per_image_s": ours_s, "torchray_per_image_s": ref, "ep_ratio": min(ref.values()) / ours_s,
            "ep_ratio_by_threads": {k: v / ours_s for k, v in ref.items()},
            "gflop_per_image": flops / 1e9, "gflops": flops / ours_s / 1e9, "of_matmul_rate": flops / ours_s / 1e9 / peak,
            "reward": {"ours": np.asarray(first["reward"]).tolist(), "torchray": ref_reward.tolist()},
            "mask_pearson": float(np.mean([pearson(a, b) for a, b in zip(ours_masks.reshape(-1, 64 * 64),
                                                                         ref_masks.reshape(-1, 64 * 64))]))}


def gradcam_case(jax_net, module, layer_of, args, torch, pgc, target_cls, peak, c):
    params, features, head = jax_net
    images = faces(args.batch, c, seed=2)
    targets = np.full(args.batch, 3)
    ours = lambda: activation.gradcam(features, head, params, images, targets).block_until_ready()   # noqa: E731
    ours()
    ours_s = timed(ours, args.runs)[0]
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    module.requires_grad_(True)   # TorchRay switched it off
    explainer = pgc.GradCAM(model=module, target_layers=[layer_of(module)])
    ref = reference_times(torch, lambda: explainer(input_tensor=x, targets=[target_cls(3)] * args.batch), args.runs)
    flops = flops_of(jax.jit(lambda p, x: activation.gradcam(features, head, p, x, targets)).lower(params, images)
                     .compile())
    return {"batch_s": ours_s, "pytorch_grad_cam_batch_s": ref, "gradcam_ratio": min(ref.values()) / ours_s,
            "gradcam_gflops": flops / ours_s / 1e9, "gradcam_of_matmul_rate": flops / ours_s / 1e9 / peak}


def fidelity(jax_net, module, args, torch, tr):
    """EP's rewards against TorchRay's on more images, both scored by TorchRay."""
    params, features, head = jax_net
    images = faces(args.fidelity_images, 1, seed=3)
    targets = np.arange(args.fidelity_images) % 8
    ours = np.asarray(perturbation.extremal_perturbation(features, head, params, images, targets,
                                                       max_iter=args.iters, **EP)["masks"])
    torch.set_num_threads(1)
    ref, _ = torchray_ep(tr, torch, module, images, targets, args.iters)
    ours_r, ref_r = (scored_by_torchray(tr, torch, module, images, targets, m) for m in (ours, ref))
    with torch.no_grad():
        span = float(np.ptp(module(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()))
    gap = ours_r - ref_r   # > 0: ours preserves more of the target logit
    return {"images": int(len(images)), "logit_span": span, "gap_mean": float(gap.mean()),
            "gap_min": float(gap.min()), "gap_max": float(gap.max()), "worst_gap_of_span": float(gap.min() / span),
            "ours_higher": int((gap > 0).sum()), "masks": int(gap.size),
            "area_ours": float((ours > 0.5).mean()), "area_torchray": float((ref > 0.5).mean()),
            "mask_pearson": float(np.mean([pearson(a, b) for a, b in zip(ours.reshape(-1, 4096),
                                                                         ref.reshape(-1, 4096))]))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=800, help="EP iterations (TorchRay's default)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64, help="GradCAM batch")
    ap.add_argument("--fidelity-images", type=int, default=12)
    args = ap.parse_args(argv)
    import torch

    from conftest import torchvision_stand_in

    warnings.filterwarnings("ignore", message="torch.meshgrid")   # TorchRay's, harmless
    torchvision_stand_in()   # pytorch-grad-cam imports torchvision, if installed (a CUDA build on PyPI)
    tr, pgc, target_cls = import_references()
    peak = matmul_rate()
    print(f"{len(jax.devices())} XLA CPU devices ({devices.cores()} cores, automatic: {devices.automatic()}); "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}; float32 matmul rate {peak:.1f} GFLOP/s")
    results = {"settings": {**vars(args), **EP, "devices": len(jax.devices())}, "matmul_gflops": peak}
    for name, build in (("lax", lax_network), ("resnet", resnet)):
        jax_net, module, layer_of = build(torch)
        case = ep_case(name, jax_net, module, args, torch, tr, peak)
        case.update(gradcam_case(jax_net, module, layer_of, args, torch, pgc, target_cls, peak,
                                 1 if name == "lax" else 3))
        results[name] = case
        print(f"{name}: EP {case['per_image_s']:.3f} s/image at {args.iters} iterations, TorchRay "
              f"{case['torchray_per_image_s']} -> {case['ep_ratio']:.2f}x; first call {case['first_call_s']:.1f} s, "
              f"compile {case['compile_s']:.1f} s; {case['gflops']:.1f} GFLOP/s ({case['of_matmul_rate']:.0%} of "
              f"matmul); GradCAM batch {args.batch} {case['batch_s'] * 1e3:.1f} ms vs pytorch-grad-cam "
              f"{ {k: round(v * 1e3, 1) for k, v in case['pytorch_grad_cam_batch_s'].items()} } ms -> "
              f"{case['gradcam_ratio']:.2f}x, {case['gradcam_gflops']:.1f} GFLOP/s")
        if name == "lax" and args.fidelity_images:
            results["fidelity"] = fidelity(jax_net, module, args, torch, tr)
            print(f"fidelity: {results['fidelity']}")
    record.write("foreign_networks", results)


if __name__ == "__main__":
    main()
