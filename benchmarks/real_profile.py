"""The real-data profile's rates: ResNet-18 at 224 px RGB, training and each attribution method.

Two parts, each a subcommand:

``train``: images/s of ``ferjax.networks.train.train`` with ferjax's ``resnet18``
(GroupNorm) on 224x224x3 images, batch ``--batch-size``, median over timed
windows after the compiling steps. Run it as one process, or as several
processes of one JAX job to measure their scaling::

    taskset -c 0 python benchmarks/real_profile.py train                 # one process on one core
    ferjax launch -n 2 -- sh -c 'taskset -c $FERJAX_PROCESS_ID python benchmarks/real_profile.py train'

``attribute``: CAM, GradCAM and Extremal Perturbation (TorchRay's 224-px
settings: ``step=7, sigma=21``, areas 0.05, 0.1, 0.2 as one batch) on a
torchvision-layout ResNet-18 written in PyTorch (BatchNorm, eval mode,
random weights: speed does not depend on them), imported through torchax,
against pytorch-grad-cam and TorchRay on the same module in the same run.
EP runs ``--ep-iters`` iterations; its per-iteration time is what the
projection multiplies by 800.

Images are the synthetic renderer's 256-px RGB faces resized to 224
(``ferjax.faces.render``), standing in for AffectNet.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import record  # noqa: E402
from attribution_speed import median_time  # noqa: E402

from ferjax.faces import expressions


def faces(n, size=224, seed=0):
    """n synthetic 256-px RGB faces resized to ``size``: (N, size, size, 3) uint8, and their classes."""
    from PIL import Image

    from ferjax.faces import render

    labels = np.arange(n) % 8
    out = []
    for k, c in enumerate(labels):
        rng = np.random.default_rng([seed, int(c), k])
        face = render.render(expressions.sample_face(rng, int(c)), 256, rng, channels=3)
        out.append(np.asarray(Image.fromarray(face).resize((size, size), Image.BILINEAR)))
    return np.stack(out), labels


def train_rate(args):
    import jax

    from ferjax.networks import train
    from ferjax.plumbing import devices, distributed

    distributed.initialize()
    images, labels = faces(64)
    mesh = devices.data_mesh(None)
    stamps = []

    def clock(step, metrics):
        jax.block_until_ready(metrics["loss"])
        stamps.append(time.perf_counter())

    warm = 2
    start = time.perf_counter()
    train.train(images, labels, model="resnet18", steps=warm + args.repeats * args.window,
                batch_size=args.batch_size, progress=False, callback=clock, mesh=mesh, augment=True)
    rates = [args.batch_size * args.window / (stamps[warm - 1 + (i + 1) * args.window] -
                                              stamps[warm - 1 + i * args.window]) for i in range(args.repeats)]
    if distributed.is_writer():
        print(f"{machine()}; {jax.process_count()} process(es), {jax.device_count()} device(s)")
        print(f"train resnet18 224x224x3 batch {args.batch_size}: median {statistics.median(rates):.2f} images/s "
              f"(windows: {', '.join(f'{r:.2f}' for r in rates)}); first {warm} steps incl. compile "
              f"{stamps[warm - 1] - start:.1f} s")
        record.update("real_profile", f"train {jax.process_count()} processes {jax.device_count()} devices",
                      {"images_per_s": statistics.median(rates), "windows": rates,
                       "first_steps_s": stamps[warm - 1] - start, "batch_size": args.batch_size})


def ep_rate(args):
    """EP images/s with the images split over every process's devices (one process, or several)."""
    import jax

    from ferjax.explain import perturbation
    from ferjax.networks import cnn
    from ferjax.plumbing import devices, distributed

    distributed.initialize()
    mesh = devices.data_mesh(None)
    n = args.images_per_device * mesh.size
    images, labels = faces(n)
    params, features, classifier = cnn.create("resnet18", num_classes=8, channels=3, size=224,
                                                key=jax.random.key(0))
    x = distributed.global_rows(mesh, images[distributed.rows(n, mesh)].astype(np.float32) / 255.0, n)

    def run():
        out = perturbation.extremal_perturbation(features, classifier, params, x, labels, areas=(0.05, 0.1, 0.2),
                                                step=7, sigma=21, max_iter=args.ep_iters, scale_to=None, mesh=mesh)
        return distributed.to_host(out["masks"])

    seconds = median_time(run, args.runs)
    if distributed.is_writer():
        print(f"{machine()}; {jax.process_count()} process(es), {jax.device_count()} device(s)")
        print(f"EP ferjax resnet18 224x224x3, 3 areas, {args.ep_iters} iterations, {n} images: "
              f"{n / seconds:.3f} images/s ({seconds / n / args.ep_iters * 1e3:.0f} ms per image-iteration)")
        record.update("real_profile", f"ep {jax.process_count()} processes {jax.device_count()} devices",
                      {"images_per_s": n / seconds, "ms_per_image_iteration": seconds / n / args.ep_iters * 1e3,
                       "images": n, "ep_iters": args.ep_iters})


def torch_resnet18(torch, num_classes=8):
    """ResNet-18 in torchvision's layout (conv1, bn1, layer1..4, fc), BatchNorm in eval mode."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
            for i, (cin, cout, s) in enumerate(widths, 1):
                setattr(self, f"layer{i}", nn.Sequential(Block(cin, cout, s), Block(cout, cout, 1)))
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = ResNet18()
    with torch.no_grad():   # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def attribute_rates(args):
    import jax
    from attribution_speed import import_references, torch_image

    from ferjax.explain import activation, perturbation
    from ferjax.networks.importers import torch as torch_importer

    torch = __import__("torch")
    torch.set_num_threads(args.torch_threads)
    torchray_ep, grad_cam, Target = import_references()
    module = torch_resnet18(torch)
    net = torch_importer.from_module(module, "layer4", size=224, channels=3)
    images, labels = faces(args.images)
    x = images.astype(np.float32) / 255.0
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        err = np.abs(np.asarray(net.logits(x)) - module(xt).numpy()).max()
    print(f"{machine()}; torch {torch.__version__} on {args.torch_threads} thread(s); jax on {jax.device_count()} "
          f"device(s); imported logits vs torch max |diff| {err:.1e}")

    def median(fn, runs=args.runs):
        return median_time(fn, runs)

    n, out = len(x), {"logits_max_abs_diff": float(err), "torch_threads": args.torch_threads}
    for name, ours in (("CAM", activation.cam), ("GradCAM", activation.gradcam)):
        cls = grad_cam.GradCAM if name == "GradCAM" else None
        t_ours = median(lambda: ours(net.features, net.head, net.params, x, labels))
        out[name] = {"images_per_s": n / t_ours}
        if cls is None:
            print(f"{name}: ferjax {n / t_ours:.2f} images/s (pytorch-grad-cam has no CAM)")
            continue
        with cls(model=module, target_layers=[module.layer4]) as ref:
            t_ref = median(lambda: ref(input_tensor=xt, targets=[Target(int(c)) for c in labels]))
        print(f"{name}: ferjax {n / t_ours:.2f} images/s, pytorch-grad-cam {n / t_ref:.2f} images/s, "
              f"ratio {t_ref / t_ours:.2f}x")
        out[name].update(reference_images_per_s=n / t_ref, ratio=t_ref / t_ours)
    ep = dict(areas=(0.05, 0.1, 0.2), step=7, sigma=21, max_iter=args.ep_iters)
    k = args.ep_images
    t_ours = median(lambda: perturbation.extremal_perturbation(net.features, net.head, net.params, x[:k], labels[:k],
                                                              scale_to=None, **ep)["masks"], runs=1)

    def torchray():
        for img, c in zip(x[:k], labels[:k]):
            torchray_ep.extremal_perturbation(module, torch_image(torch, img), int(c), max_iter=args.ep_iters,
                                              areas=list(ep["areas"]), step=7, sigma=21)
    t_ref = median(torchray, runs=1)
    per_iter, per_iter_ref = t_ours / k / args.ep_iters, t_ref / k / args.ep_iters
    print(f"EP, 3 areas, {args.ep_iters} iterations, {k} images: ferjax {per_iter * 1e3:.0f} ms per image-iteration, "
          f"TorchRay {per_iter_ref * 1e3:.0f} ms, ratio {t_ref / t_ours:.2f}x; at 800 iterations: ferjax "
          f"{per_iter * 800:.0f} s per image and target, TorchRay {per_iter_ref * 800:.0f} s")
    out["EP"] = {"ms_per_image_iteration": per_iter * 1e3, "reference_ms_per_image_iteration": per_iter_ref * 1e3,
                 "ratio": t_ref / t_ours, "ep_iters": args.ep_iters, "images": k}
    record.update("real_profile", f"attribute 1 processes {jax.device_count()} devices", out)


def machine():
    return f"machine: {platform.machine()}, {os.cpu_count()} CPUs"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    t = sub.add_parser("train")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--window", type=int, default=2)
    t.add_argument("--repeats", type=int, default=3)
    e = sub.add_parser("ep")
    e.add_argument("--images-per-device", type=int, default=2)
    e.add_argument("--ep-iters", type=int, default=5)
    e.add_argument("--runs", type=int, default=2)
    a = sub.add_parser("attribute")
    a.add_argument("--images", type=int, default=8, help="batch of CAM and GradCAM")
    a.add_argument("--ep-images", type=int, default=2)
    a.add_argument("--ep-iters", type=int, default=10)
    a.add_argument("--runs", type=int, default=3)
    a.add_argument("--torch-threads", type=int, default=2)
    args = parser.parse_args(argv)
    {"train": train_rate, "ep": ep_rate, "attribute": attribute_rates}[args.part](args)


if __name__ == "__main__":
    main()
