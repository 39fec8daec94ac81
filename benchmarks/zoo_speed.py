"""The off-the-shelf zoo at 224 px: ferjax's GradCAM and Extremal Perturbation against pytorch-grad-cam and TorchRay.

The architectures of tests/test_zoo.py (ResNet-50, MobileNetV3-Large, EfficientNet-B0, ConvNeXt-Tiny from
torchvision, ViT-Small/16 from timm), random weights and an 8-class head, at their native 224 x 224 x 3, each
imported through ferjax.networks.importers.torch at the layer pytorch-grad-cam's documentation recommends. Per
model: the import's time, its logits against torch's, what the convolution rewrite did, GradCAM on a batch
of ``--batch`` (first call and median of ``--runs`` after it) against pytorch-grad-cam with 1 torch thread and
one per core, and Extremal Perturbation per image (one image per device; area 0.1, TorchRay's step 7 and sigma 21,
``--ep-iters`` iterations) against TorchRay (one image per call, as it works), with the achieved GFLOP/s beside the machine's float32 matmul
rate. Run with no environment variables, as a user would.

Needs torch, torchax, torchvision==0.28.0 and timm (installed with --no-deps; .ci/run), grad-cam and
torchray. Writes benchmarks/zoo_speed.json (benchmarks/record.py) and prints the figures.
Usage: ``python benchmarks/zoo_speed.py [--batch 8] [--runs 3] [--ep-iters 20] [names...]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]

import jax  # noqa: E402
import record  # noqa: E402
from attribution_speed import flops_of, import_references, timed, torch_image  # noqa: E402
from foreign_networks import matmul_rate, reference_times  # noqa: E402

from ferjax.explain import activation, perturbation  # noqa: E402
from ferjax.networks import rewrite  # noqa: E402

SIZE = 224
EP = dict(areas=(0.1,), step=7, sigma=21)


def zoo_model(name, args, torch, tr, pgc, target_cls, peak):
    import test_zoo

    from ferjax.networks.importers import torch as importer

    _, model = test_zoo.build(name, SIZE)
    layer = test_zoo.ZOO[name][2]
    start = time.perf_counter()
    net = importer.from_module(model, layer, size=SIZE, channels=3, labels=list(range(test_zoo.CLASSES)))
    imported = time.perf_counter() - start
    images = np.random.default_rng(0).random((args.batch, SIZE, SIZE, 3), np.float32)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        want = model(x).numpy()
    got = np.asarray(net.logits(images))
    targets = np.full(args.batch, 3)
    ours = lambda: activation.gradcam(net.features, net.head, net.params, images, targets).block_until_ready()  # noqa: E731
    start = time.perf_counter()
    ours()
    first = time.perf_counter() - start
    ours_s = timed(ours, args.runs)[0]
    reshape = None
    if net.spec["tokens"]:
        (h, w), prefix = net.spec["tokens"]["grid"], net.spec["tokens"]["prefix"]
        reshape = lambda t: t[:, prefix:].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)  # noqa: E731
    explainer = pgc.GradCAM(model=model, target_layers=[test_zoo.layer_module(model, layer)],
                            reshape_transform=reshape)
    ref = reference_times(torch, lambda: explainer(input_tensor=x, targets=[target_cls(3)] * args.batch), args.runs)
    flops = flops_of(jax.jit(lambda p, x: activation.gradcam(net.features, net.head, p, x, targets))
                     .lower(net.params, images).compile())
    out = {"import_s": imported, "logits_error_of_span": float(np.abs(got - want).max() / np.ptp(want)),
           "rewrite": rewrite.count(net.features, net.params, images[:1]),
           "gradcam": {"first_call_s": first, "batch_s": ours_s, "pytorch_grad_cam_batch_s": ref,
                       "ratio": min(ref.values()) / ours_s, "gflops": flops / ours_s / 1e9,
                       "of_matmul_rate": flops / ours_s / 1e9 / peak}}
    if args.ep_iters:
        few = images[:len(jax.devices())]   # one image per device: per image, as a batch of them runs

        def ep():
            return jax.block_until_ready(perturbation.extremal_perturbation(
                net.features, net.head, net.params, few, [3] * len(few), max_iter=args.ep_iters, **EP)["masks"])
        start = time.perf_counter()
        ep()
        first = time.perf_counter() - start
        ep_s = timed(ep, args.runs)[0] / len(few)
        model.requires_grad_(False)
        tr_s = reference_times(torch, lambda: tr.extremal_perturbation(
            model, torch_image(torch, few[0]), 3, max_iter=args.ep_iters, areas=list(EP["areas"]),
            step=EP["step"], sigma=EP["sigma"]), 1, warm_up=False)
        model.requires_grad_(True)
        out["ep"] = {"iterations": args.ep_iters, "first_call_s": first, "per_image_s": ep_s,
                     "torchray_per_image_s": tr_s, "ratio": min(tr_s.values()) / ep_s}
    return out


def main(argv=None):
    import test_zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(test_zoo.ZOO))
    ap.add_argument("--batch", type=int, default=8, help="GradCAM batch")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ep-iters", type=int, default=20, help="EP iterations on one image (0: no EP)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    import torch

    from conftest import torchvision_stand_in

    torchvision_stand_in()
    tr, pgc, target_cls = import_references()
    peak = matmul_rate()
    print(f"{len(jax.devices())} XLA CPU devices; float32 matmul rate {peak:.1f} GFLOP/s")
    results = {"settings": {**vars(args), "size": SIZE, **EP, "devices": len(jax.devices())}, "matmul_gflops": peak,
               "models": {}}
    for name in args.names:
        results["models"][name] = r = zoo_model(name, args, torch, tr, pgc, target_cls, peak)
        g = r["gradcam"]
        print(f"{name}: import {r['import_s']:.1f} s, logits {r['logits_error_of_span']:.1e} of span, "
              f"rewrite {r['rewrite']}; GradCAM batch {args.batch}: first call {g['first_call_s']:.1f} s, "
              f"{g['batch_s']:.3f} s vs {g['pytorch_grad_cam_batch_s']} -> {g['ratio']:.2f}x, "
              f"{g['gflops']:.1f} GFLOP/s" + (f"; EP {r['ep']['per_image_s']:.2f} s/image vs TorchRay "
                                               f"{r['ep']['torchray_per_image_s']} -> {r['ep']['ratio']:.2f}x"
                                               if "ep" in r else ""))
    record.write("zoo_speed", results)


if __name__ == "__main__":
    main()
