"""Attribution speed: ferjax (JAX) vs the reference implementations (PyTorch).

Same network (``--model``: the default study's ``fine``, or ``small``), same
inputs, same run:

* CAM / GradCAM on a batch of 64 images (64 x 64 x 1), target class 3:
  ``ferjax.explain.activation.cam`` / ``gradcam`` (jit-compiled, warmed up) vs
  pytorch-grad-cam's ``GradCAM`` (pytorch-grad-cam has no plain CAM class; on
  this GAP-linear network GradCAM equals CAM up to a constant, so our CAM is
  compared with their GradCAM as well).
* Extremal Perturbation, per image: ``ferjax.explain.perturbation.extremal_perturbation``
  (all images in one compiled program) vs TorchRay's ``extremal_perturbation``
  (one image per call, as TorchRay works), identical settings.
* FLOP counts (XLA's cost analysis for ours; ``torch.utils.flop_counter`` for
  the references) and the fraction of the machine's float32 matmul rate
  (measured here with a large jax matmul) each method reaches.

The torch network is a port of the JAX parameters (HWIO -> OIHW, NHWC ->
NCHW, flax's SAME padding reproduced exactly, GroupNorm with flax's group
count and epsilon); the script exits with status 1 if the two networks' logits
differ by more than 1e-4, or if the maps disagree.

Threads: torch.set_num_threads(2); XLA keeps its default CPU threading
(one intra-op pool over all cores; XLA_FLAGS is printed). The references are
also timed with 1 torch thread (``--torch-threads``). OMP_WAIT_POLICY is set
to PASSIVE unless already set: on a 2-core machine shared with other work,
OpenMP's default spin-waiting made 2-thread torch 5-60x slower and erratic
(a single-image forward + backward of this network: 21-295 ms with the
default policy, 5 ms with PASSIVE, 3-4 ms with 1 thread).

pytorch-grad-cam and TorchRay import torchvision, cv2, ttach, sklearn and
matplotlib at module level without needing them here (they are not installed
beside torch==2.13.0 CPU); while they are imported, any of those that is
missing is served as an inert placeholder module. cv2's placeholder gets a
real ``resize`` (bilinear, half-pixel centres, edge replication: what
``cv2.resize`` does with its default INTER_LINEAR when enlarging), because
pytorch-grad-cam uses it to bring the 8 x 8 maps to 64 x 64.

Usage::

    python benchmarks/attribution_speed.py [--runs 3] [--max-iter 800] [--ep-images 8] \
        [--torch-threads 2,1]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import platform
import statistics
import sys
import time
import types
import warnings

import numpy as np
import record

from ferjax.explain import masks as ep_masks

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

BATCH, SIZE, CHANNELS, CLASSES, TARGET = 64, 64, 1, 8, 3
PORT_ATOL = 1e-4


# ----------------------------------------------------------------- reference imports

PLACEHOLDER_ROOTS = {"torchvision", "cv2", "ttach", "sklearn", "matplotlib"}


class _Inert:
    """Any attribute, call or subclassing of a placeholder module lands here."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __getattr__(self, name):
        return _Inert()


def _resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix, half-pixel centres, clamped edges."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m.astype(np.float32)


def _cv2_resize(img, dsize, *args, **kwargs):
    """cv2.resize(img, (width, height)) for a 2-D float image, INTER_LINEAR."""
    width, height = dsize
    img = np.asarray(img, np.float32)
    return _resize_matrix(height, img.shape[0]) @ img @ _resize_matrix(width, img.shape[1]).T


def _placeholder_attr(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Inert


class _PlaceholderImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in PLACEHOLDER_ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []
        mod.__getattr__ = _placeholder_attr
        if spec.name == "cv2":
            mod.resize = _cv2_resize
            mod.INTER_LINEAR = 1
        return mod

    def exec_module(self, module):
        pass


def import_references():
    """(torchray EP module, pytorch_grad_cam, ClassifierOutputTarget)."""
    importer = _PlaceholderImporter()
    sys.meta_path.append(importer)  # last: real packages win when installed
    try:
        import pytorch_grad_cam
        import torchray.attribution.extremal_perturbation as torchray_ep
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    finally:
        sys.meta_path.remove(importer)
    return torchray_ep, pytorch_grad_cam, ClassifierOutputTarget


def median_time(fn, runs):
    """Median seconds of ``runs`` calls of ``fn`` (its result waited for), after one warm-up call."""
    import jax

    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------- the torch port

def torch_image(torch, image):
    """One (H, W, C) numpy image as a (1, C, H, W) torch tensor."""
    return torch.from_numpy(image.transpose(2, 0, 1)[None].copy())


def torchray_masks(torchray_ep, torch, net, images, targets, **kw):
    """TorchRay's ``extremal_perturbation`` one image per call, as it works: (N, H, W) masks."""
    return np.array([torchray_ep.extremal_perturbation(net, torch_image(torch, x), int(t), **kw)[0].numpy()[0, 0]
                     for x, t in zip(images, targets)])


def torch_plain(params, torch, name):
    """ferjax's plain network ``name`` (small, fine) in torch, weights copied from the flax params."""
    from flax import nnx

    from ferjax.networks.cnn import (  # the group count flax's GroupNorm was built with
        PLAIN,
        _groups,
    )

    eps = nnx.GroupNorm(8, num_groups=2, rngs=nnx.Rngs(0)).epsilon  # flax default, 1e-6
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, p, stride):
            super().__init__()
            kernel = np.asarray(p["conv"]["kernel"])            # (3, 3, in, out) HWIO
            cin, cout = kernel.shape[2:]
            # flax SAME: total padding k - 1 = 2 at stride 1 (1 | 1); at stride 2 on an
            # even side, total max(k - s, 0) = 1, all of it after (0 | 1)
            self.pad = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)
            self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=0, bias=False)
            self.norm = nn.GroupNorm(_groups(cout), cout, eps=eps)
            self.relu = nn.ReLU()
            with torch.no_grad():
                self.conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
                self.norm.weight.copy_(torch.from_numpy(np.array(p["norm"]["scale"])))
                self.norm.bias.copy_(torch.from_numpy(np.array(p["norm"]["bias"])))

        def forward(self, x):
            return self.relu(self.norm(self.conv(nn.functional.pad(x, self.pad))))

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*[Block(params["convs"][i], s)
                                          for i, (_, s) in enumerate(PLAIN[name])])
            kernel = np.asarray(params["head"]["kernel"])       # (K, C)
            self.head = nn.Linear(*kernel.shape)
            with torch.no_grad():
                self.head.weight.copy_(torch.from_numpy(kernel.T.copy()))
                self.head.bias.copy_(torch.from_numpy(np.array(params["head"]["bias"])))

        def forward(self, x):                                   # NCHW
            return self.head(self.blocks(x).mean(dim=(2, 3)))

    return Plain().eval()


def randomise_norms(params, key, jax):
    """GroupNorm scale/bias start at 1/0; perturb them so the port check covers them."""
    leaves, tree = jax.tree.flatten_with_path(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for (path, leaf), k in zip(leaves, keys):
        name = str(path[-1].key)
        if name == "scale":
            leaf = leaf * (1 + 0.3 * jax.random.normal(k, leaf.shape))
        elif name == "bias" and "norm" in str(path):
            leaf = leaf + 0.2 * jax.random.normal(k, leaf.shape)
        out.append(leaf)
    return jax.tree.unflatten(tree, out)


# ----------------------------------------------------------------- helpers

def timed(fn, runs):
    """Median wall time over ``runs`` calls (fn must block until its result is ready)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def flops_of(compiled):
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    return float(ca.get("flops", float("nan")))


def torch_flops(torch, fn):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def fmt_g(x):
    return f"{x / 1e9:.3f} GFLOP"


def pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ----------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="timed runs per method (median)")
    ap.add_argument("--max-iter", type=int, default=800, help="Extremal Perturbation iterations")
    ap.add_argument("--ep-images", type=int, default=8, help="images for Extremal Perturbation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-dir", default=None,
                    help="a trained `fine` or `small` model (`ferjax train` output, e.g. work/model) "
                         "for the fast-preset comparison on real stimuli; skipped without it")
    ap.add_argument("--model", default="fine", choices=("fine", "small"),
                    help="network of the speed comparison (random weights)")
    ap.add_argument("--stimuli", default="work/stimuli", help="stimuli for --model-dir")
    ap.add_argument("--fast-per-class", type=int, default=6,
                    help="stimuli per class for the fast-preset comparison (with --model-dir)")
    ap.add_argument("--fast-iters", default="20,40,60,80,100,120,160,200",
                    help="fast-preset iteration counts to try against TorchRay's 800")
    ap.add_argument("--cpu-devices", type=int, default=None,
                    help="split the CPU into N XLA devices (ferjax --cpu-devices); EP shards its "
                         "images over them")
    ap.add_argument("--torch-device", default="cpu",
                    help="device for the references (cpu, or cuda on a GPU machine)")
    ap.add_argument("--torch-threads", default="2,1",
                    help="torch thread counts to time the references with (first = primary)")
    args = ap.parse_args(argv)
    thread_counts = [int(t) for t in args.torch_threads.split(",")]

    import jax
    import jax.numpy as jnp
    import torch

    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    from ferjax.explain import activation, perturbation
    from ferjax.networks.cnn import create

    torch.set_num_threads(thread_counts[0])
    if jax.default_backend() != "cpu":
        # full float32 on both sides (no TF32), so the port check and maps compare like for like
        jax.config.update("jax_default_matmul_precision", "highest")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    warnings.filterwarnings("ignore", message="torch.meshgrid")  # TorchRay's, harmless
    torchray_ep, pgc, ClassifierOutputTarget = import_references()

    print("# attribution_speed")
    print(f"date (UTC)   : {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S}")
    print(f"machine      : {platform.platform()}; {platform.machine()}; "
          f"processor {platform.processor() or '?'}")
    print(f"CPUs         : os.cpu_count()={os.cpu_count()}, "
          f"usable={len(os.sched_getaffinity(0))}; jax devices {jax.devices()}")
    print(f"threads      : torch.set_num_threads(2) -> {torch.get_num_threads()}; "
          f"XLA default CPU threading (XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}); "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; references also timed with "
          f"torch threads {thread_counts}")
    print("versions     : python " + platform.python_version() + ", " + ", ".join(
        f"{d} {version(d)}" for d in ("jax", "jaxlib", "flax", "numpy", "torch", "torchray",
                                      "grad-cam")))
    print(f"settings     : model {args.model}, runs={args.runs} (medians), batch={BATCH} x {SIZE}x{SIZE}x{CHANNELS}, "
          f"target class {TARGET}, seed {args.seed}")
    results = {"model": args.model, "runs": args.runs, "threads": thread_counts}

    # -------------------------------------------------- model, port, inputs
    kp, kn, kx = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    params, features, classifier = create(args.model, num_classes=CLASSES, channels=CHANNELS,
                                          size=SIZE, key=kp)
    params = randomise_norms(params, kn, jax)
    images = (jax.random.uniform(kx, (BATCH, SIZE, SIZE, CHANNELS)) - 0.5) / 0.25
    images_np = np.asarray(images)
    dev = torch.device(args.torch_device)
    x_t = torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy()).to(dev)
    net = torch_plain(params, torch, args.model).to(dev)

    ours_logits = np.asarray(jax.jit(lambda p, x: classifier(p, features(p, x).mean((1, 2))))(
        params, images))
    with torch.no_grad():
        ref_logits = net(x_t).cpu().numpy()
    err = float(np.abs(ours_logits - ref_logits).max())
    print(f"\nport check   : max |logits_jax - logits_torch| = {err:.2e} over {BATCH} images "
          f"(tolerance {PORT_ATOL:g}; logit scale {np.abs(ref_logits).max():.3g})")
    if not np.isfinite(err) or err > PORT_ATOL:
        print("FAIL: the torch port does not reproduce the JAX network", file=sys.stderr)
        return 1

    # -------------------------------------------------- machine FLOP rate
    n = 3072
    a = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(2), (n, n), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    mm(a, b).block_until_ready()
    t_mm, _ = timed(lambda: mm(a, b).block_until_ready(), max(args.runs, 5))
    peak = 2 * n ** 3 / t_mm
    print(f"machine rate : {peak / 1e9:.1f} GFLOP/s (jax float32 {n}x{n} @ {n}x{n}, "
          f"median of {max(args.runs, 5)})")
    results["machine_gflops"] = peak / 1e9

    # -------------------------------------------------- CAM / GradCAM
    print(f"\n## CAM / GradCAM, batch {BATCH}, target class {TARGET}")
    targets = np.full(BATCH, TARGET)

    def ours_cam():
        return activation.cam(features, classifier, params, images, targets).block_until_ready()

    def ours_gradcam():
        return activation.gradcam(features, classifier, params, images,
                                   targets).block_until_ready()

    explainer = pgc.GradCAM(model=net, target_layers=[net.blocks[-1].relu])
    ref_targets = [ClassifierOutputTarget(TARGET) for _ in range(BATCH)]

    def ref_gradcam():
        return explainer(input_tensor=x_t, targets=ref_targets)

    # warm-up (compiles ours) and agreement
    m_cam, m_grad, m_ref = (np.asarray(f()) for f in (ours_cam, ours_gradcam, ref_gradcam))
    d_grad = float(np.abs(m_grad - m_ref).max())
    d_cam = float(np.abs(m_cam - m_ref).max())
    r_min = min(pearson(a_, b_) for a_, b_ in zip(m_cam, m_ref))
    print(f"agreement    : max |ours GradCAM - ref| = {d_grad:.1e}, "
          f"max |ours CAM - ref GradCAM| = {d_cam:.1e}, min per-map Pearson CAM/ref {r_min:.5f}")
    results["cam_gradcam"] = {"batch": BATCH, "max_abs_gradcam_vs_reference": d_grad,
                              "max_abs_cam_vs_reference": d_cam, "min_pearson_cam_vs_reference": r_min}
    if d_grad > 1e-3:
        print("FAIL: maps disagree", file=sys.stderr)
        return 1

    f_cam = flops_of(jax.jit(lambda p, x: activation.cam(features, classifier, p, x, targets))
                     .lower(params, images).compile())
    f_grad = flops_of(jax.jit(lambda p, x: activation.gradcam(features, classifier, p, x, targets))
                      .lower(params, images).compile())
    f_ref = torch_flops(torch, ref_gradcam)

    rows, refs = [], []
    cases = [("ours CAM (cam())", ours_cam, f_cam), ("ours GradCAM (gradcam())", ours_gradcam, f_grad)]
    cases += [(f"pytorch-grad-cam GradCAM, {th} thr", (th, ref_gradcam), f_ref)
              for th in thread_counts]
    for name, fn, fl in cases:
        if isinstance(fn, tuple):
            torch.set_num_threads(fn[0])
            fn = fn[1]
            fn()  # warm-up at this thread count
        med, all_t = timed(fn, args.runs)
        (refs if name.startswith("pytorch") else rows).append((name, med))
        results["cam_gradcam"][name] = {"images_per_s": BATCH / med, "runs_s": all_t, "flops_per_batch": fl,
                                        "share_of_machine_rate": fl / med / peak}
        print(f"{name:34s}: {BATCH / med:9.1f} images/s  (median {med * 1e3:8.2f} ms / batch; "
              f"runs {', '.join(f'{t * 1e3:.1f}' for t in all_t)} ms)  "
              f"{fmt_g(fl)} / batch, {fl / med / peak:6.2%} of machine rate")
    torch.set_num_threads(thread_counts[0])
    for ref_name, ref_t in refs:
        for name, med in rows:
            print(f"ratio {name:31s} / {ref_name}: {ref_t / med:6.2f}x images/s")
            results["cam_gradcam"].setdefault("ratios", {})[f"{name} / {ref_name}"] = ref_t / med

    # -------------------------------------------------- Extremal Perturbation
    ni, iters = args.ep_images, args.max_iter
    ep_kw = dict(areas=[0.1], max_iter=iters, step=2, sigma=6)  # 7, 21 scaled 64/224
    print(f"\n## Extremal Perturbation, {ni} images, target class {TARGET}: areas=[0.1], "
          f"max_iter={iters}, step=2, sigma=6 (TorchRay's 7/21 scaled by 64/224), other "
          "settings TorchRay defaults (preserve, blur, 8 levels, max_blur 20, jitter, "
          "simple reward)")
    ep_images = images[:ni]
    ep_targets = np.full(ni, TARGET)
    ep_net = torch_plain(params, torch, args.model).to(dev)  # TorchRay switches requires_grad off on the model

    def ours_ep():
        out = perturbation.extremal_perturbation(features, classifier, params, ep_images,
                                                 ep_targets, **ep_kw)
        return jax.block_until_ready(out)

    def ref_ep():
        masks, rewards = [], []
        for i in range(ni):
            x = torch_image(torch, images_np[i]).to(dev)
            m, hist = torchray_ep.extremal_perturbation(ep_net, x, TARGET, **ep_kw)
            masks.append(m.cpu().numpy()[0, 0])
            rewards.append(float(hist[0, 0, -1]))
        return np.stack(masks), np.asarray(rewards)

    t0 = time.perf_counter()
    ours_out = ours_ep()
    t_first = time.perf_counter() - t0
    ours_masks, ours_reward = np.asarray(ours_out["masks"])[:, 0], np.asarray(ours_out["reward"])[:, 0]
    t_ours, ours_all = timed(ours_ep, args.runs)
    ref_timings, ref_out = [], None
    for th in thread_counts:
        torch.set_num_threads(th)
        ref_times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            ref_out = ref_ep()
            ref_times.append(time.perf_counter() - t0)
        ref_timings.append((th, statistics.median(ref_times), ref_times))
    torch.set_num_threads(thread_counts[0])
    ref_masks, ref_reward = ref_out

    # FLOPs. XLA's cost analysis counts a loop body once, whatever its trip count (the
    # scan over iterations, and the map over each device's images), so count one image
    # on one device: per image = (that program - blur pyramid) * max_iter + blur pyramid.
    one_device = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    ep_jit = jax.jit(lambda p, x: perturbation.extremal_perturbation(
        features, classifier, p, x, ep_targets[:1], mesh=one_device, **ep_kw)["masks"])
    f_prog = flops_of(ep_jit.lower(params, ep_images[:1]).compile())
    f_pyr = flops_of(jax.jit(lambda im: ep_masks.pyramid(im, 8, 20.0, "blur"))
                     .lower(ep_images[0]).compile())
    f_ours_ep = ni * ((f_prog - f_pyr) * iters + f_pyr)
    # TorchRay: count 10 and 20 iterations on one image, extrapolate linearly, x images
    x0 = torch_image(torch, images_np[0]).to(dev)
    c10, c20 = (torch_flops(torch, lambda n=n: torchray_ep.extremal_perturbation(
        ep_net, x0, TARGET, **{**ep_kw, "max_iter": n})) for n in (10, 20))
    f_ref_ep = ni * (c10 + (c20 - c10) / 10 * (iters - 10))

    print(f"ours (one jit call)  : {t_ours / ni:8.4f} s/image  (median {t_ours:.2f} s / {ni} "
          f"images; runs {', '.join(f'{t:.2f}' for t in ours_all)} s; first call incl. "
          f"compile {t_first:.1f} s)  {fmt_g(f_ours_ep / ni)} / image, "
          f"{f_ours_ep / t_ours / peak:6.2%} of machine rate")
    for th, t_ref, ref_times in ref_timings:
        print(f"TorchRay, {th} thr       : {t_ref / ni:8.4f} s/image  (median {t_ref:.2f} s / {ni} "
              f"images; runs {', '.join(f'{t:.2f}' for t in ref_times)} s)  "
              f"{fmt_g(f_ref_ep / ni)} / image, {f_ref_ep / t_ref / peak:6.2%} of machine rate")
    for th, t_ref, _ in ref_timings:
        print(f"ratio ours / TorchRay {th} thr: {t_ref / t_ours:6.2f}x images/s")
    results["ep"] = {"images": ni, "max_iter": iters, "ours_s_per_image": t_ours / ni, "ours_first_call_s": t_first,
                     "ours_share_of_machine_rate": f_ours_ep / t_ours / peak,
                     "torchray": {str(th): {"s_per_image": t_ref / ni, "ratio": t_ref / t_ours,
                                            "share_of_machine_rate": f_ref_ep / t_ref / peak}
                                  for th, t_ref, _ in ref_timings},
                     "ours_reward_median": float(np.median(ours_reward)),
                     "torchray_reward_median": float(np.median(ref_reward)),
                     "mask_pearson_mean": float(np.mean([pearson(a_, b_) for a_, b_ in zip(ours_masks, ref_masks)]))}
    print(f"final reward (logit of class {TARGET} at the last iteration), per image:")
    print("  ours    : " + " ".join(f"{r:7.3f}" for r in ours_reward)
          + f"   median {np.median(ours_reward):.3f}")
    print("  TorchRay: " + " ".join(f"{r:7.3f}" for r in ref_reward)
          + f"   median {np.median(ref_reward):.3f}")
    print("  mask Pearson ours/TorchRay per image: "
          + " ".join(f"{pearson(a_, b_):.3f}" for a_, b_ in zip(ours_masks, ref_masks))
          + f"; area>0.5 ours {np.mean(ours_masks > 0.5):.3f}, "
            f"TorchRay {np.mean(ref_masks > 0.5):.3f}")

    if args.model_dir:
        results["fast_vs_faithful"] = fast_vs_faithful(args, torch, torchray_ep, thread_counts)

    print("\nFLOP notes: ours = XLA cost analysis of the compiled program (every op, "
          "elementwise included); references = torch.utils.flop_counter (convolutions and "
          "matrix products only), so the reference counts are lower bounds.")
    record.write("attribution_speed", results)
    return 0


AREA_SLACK = 0.002  # 8 of 4,096 pixels


def trained_stimuli(model_dir, stimuli_dir, per_class):
    """A trained model and the first ``per_class`` stimuli of each class, as the network sees them.

    Returns ``(params, features, classifier, spec, images, targets)``: images
    (N, S, S, 1) standardised like the network's input, targets the true
    classes. ValueError unless the model is a multiclass grey `fine` or `small`
    (the networks ``torch_plain`` ports).
    """
    import jax
    import pandas as pd

    from ferjax.faces.images import read_stimuli, to_model_input
    from ferjax.networks import cnn
    from ferjax.networks.saved import load_model

    params, _, _, spec = load_model(model_dir)
    if spec["model"] not in ("fine", "small") or spec["mode"] != "multiclass" or spec["channels"] != CHANNELS:
        raise ValueError(f"needs a multiclass `fine` or `small` grey model, got {spec}")
    features, classifier = cnn.functions(spec["model"], num_classes=spec["num_classes"], channels=CHANNELS)
    trials = pd.read_csv(os.path.join(stimuli_dir, "trials.csv"))
    rows = trials.groupby("true").head(per_class).index
    x01 = to_model_input(read_stimuli(stimuli_dir, trials["filename"][rows], CHANNELS), spec["size"], CHANNELS)
    images = np.asarray(cnn.preprocess(jax.numpy.asarray(x01)))
    return params, features, classifier, spec, images, trials["true"].to_numpy()[rows]


def fast_vs_faithful(args, torch, torchray_ep, thread_counts):
    """The `fast` preset vs TorchRay's 800 faithful iterations on a trained network.

    Every final mask is scored with TorchRay's own operator (its Perturbation
    pyramid and the torch port): reward = target logit of the perturbed image.
    "Reaches" = the median per-image reward difference is >= 0 *at the same
    area*: the median area difference (fraction of pixels above 0.5) is at
    most AREA_SLACK. The reward grows steeply with area (in development, 0.008
    more area bought 0.3 logits), so the issue's 0.02 fidelity tolerance
    would let a larger mask pass for a better one.
    """
    import jax

    from ferjax.explain import perturbation

    try:
        params, features, classifier, spec, images, targets = trained_stimuli(
            args.model_dir, args.stimuli, args.fast_per_class)
    except ValueError as e:
        print(f"\n(fast-preset comparison skipped: {e})")
        return None
    net = torch_plain(params, torch, spec["model"])
    kw = dict(areas=[0.1], step=2, sigma=6)
    ni = len(images)
    print(f"\n## fast preset vs TorchRay's 800 faithful iterations: trained model {args.model_dir}, "
          f"{ni} stimuli ({args.fast_per_class} per class, the first in trials.csv), true-class "
          f"logit, area 0.1, step 2, sigma 6")

    def torch_reward(mask, i):
        pert = torchray_ep.Perturbation(torch_image(torch, images[i]), num_levels=8, type="blur")
        with torch.no_grad():
            y = net(pert.apply(torch.from_numpy(np.array(mask, np.float32))[None, None]))
        return float(y[0, targets[i]])

    with torch.no_grad():
        full = net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()[np.arange(ni), targets]
        blurred = np.array([float(net(torchray_ep.Perturbation(
            torch_image(torch, images[i]), num_levels=8, type="blur").pyramid[:1])[0, targets[i]]) for i in range(ni)])
    span = np.median(full - blurred)
    torch.set_num_threads(min(thread_counts))
    t0 = time.perf_counter()
    ref_masks = torchray_masks(torchray_ep, torch, net, images, targets, max_iter=800, **kw)
    t_ref = (time.perf_counter() - t0) / ni
    torch.set_num_threads(thread_counts[0])
    ref_r = np.array([torch_reward(m, i) for i, m in enumerate(ref_masks)])
    ref_a = np.array([np.mean(m > 0.5) for m in ref_masks])
    print(f"reward range : target logit, unperturbed minus fully blurred, median {span:.3f}")
    out = {"stimuli": ni, "reward_span_median": float(span), "torchray_s_per_image": t_ref,
           "torchray_reward_median": float(np.median(ref_r)), "runs": {}}
    print(f"TorchRay 800 faithful, {min(thread_counts)} thr: {t_ref:7.3f} s/image; reward median "
          f"{np.median(ref_r):.3f}; area>0.5 mean {ref_a.mean():.3f}")

    def ours(preset, iters):
        def run():
            return jax.block_until_ready(perturbation.extremal_perturbation(
                features, classifier, params, images, targets, max_iter=iters, preset=preset, **kw))
        out = run()
        t, _ = timed(run, 1 if iters >= 400 else args.runs)
        masks = np.asarray(out["masks"])[:, 0]
        r = np.array([torch_reward(m, i) for i, m in enumerate(masks)])
        a = (masks > 0.5).mean(axis=(1, 2))
        return t / ni, r, a, masks

    for preset, iters in [("faithful", 800)] + [("fast", int(k)) for k in args.fast_iters.split(",")]:
        t, r, a, masks = ours(preset, iters)
        d = r - ref_r
        reached = np.median(d) >= 0 and np.median(a - ref_a) <= AREA_SLACK
        corr = np.mean([pearson(m, q) for m, q in zip(masks, ref_masks)])
        # the per-image differences are wide (different local optima), so the
        # median's sampling spread is printed beside it: a bootstrap 95% interval
        boot = np.median(d[np.random.default_rng(0).integers(0, ni, (2000, ni))], axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        print(f"ours {preset:8s} {iters:4d} it: {t:7.3f} s/image ({t_ref / t:6.1f}x faster); reward - "
              f"TorchRay's: median {np.median(d):+.3f} (95% interval {lo:+.3f} to {hi:+.3f}; min "
              f"{d.min():+.3f}, {np.mean(d >= 0):.0%} of images >= 0); area diff median "
              f"{np.median(a - ref_a):+.3f}; mask Pearson "
              f"{corr:.3f}; {'REACHES' if reached else 'does not reach'} TorchRay's reward at its area")
        out["runs"][f"{preset} {iters}"] = {
            "s_per_image": t, "speedup": t_ref / t, "reward_diff_median": float(np.median(d)),
            "reward_diff_ci95": [float(lo), float(hi)], "area_diff_median": float(np.median(a - ref_a)),
            "mask_pearson_mean": float(corr), "reaches": bool(reached)}
    return out


if __name__ == "__main__":
    sys.exit(main())
