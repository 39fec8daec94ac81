"""The architectures researchers take off the shelf, imported through ferjax.networks.importers.torch.

ResNet-50, MobileNetV3-Large, EfficientNet-B0 and ConvNeXt-Tiny from torchvision, ViT-Small/16 from timm,
with random weights (nothing is downloaded; BatchNorm statistics and layer scales drawn so that every branch
counts) and an 8-class head, at 64 px to keep CI short (benchmarks/zoo_speed.py times them at 224 px). Each
must give torch's logits within 1e-4 of their span, pytorch-grad-cam's GradCAM at the layer its documentation
recommends (Pearson >= 0.999 per map; the ViT with its reshape_transform), and run Extremal Perturbation.

The real architecture code runs on the CPU torch: torchvision 0.28.0 (PyPI's build for torch 2.13.0, a CUDA
build) imports through conftest.torchvision_stand_in, and timm imports that torchvision. CI installs both with
--no-deps (.ci/run); they are test dependencies only.
"""

import importlib.util

import numpy as np
import pytest
from conftest import missing_reference, torchvision_stand_in
from test_torch_import import logits_close, reference_raw_gradcam

from ferjax.explain import activation, perturbation
from ferjax.networks import rewrite

SIZE, CLASSES = 64, 8
# name: (library, constructor, pytorch-grad-cam's recommended layer, extra constructor arguments)
ZOO = {
    "resnet50": ("torchvision", "resnet50", "layer4[-1]", {}),
    "mobilenet_v3_large": ("torchvision", "mobilenet_v3_large", "features[-1]", {}),
    "efficientnet_b0": ("torchvision", "efficientnet_b0", "features[-1]", {}),
    "convnext_tiny": ("torchvision", "convnext_tiny", "features[-1]", {}),
    "vit_small_patch16_224": ("timm", "vit_small_patch16_224", "blocks[-1].norm1", {"img_size": "size"}),
}


def build(name, size=SIZE):
    """The architecture with random, informative weights, in eval mode, for ``size``-px inputs."""
    library, constructor, _, extra = ZOO[name]
    extra = {k: size if v == "size" else v for k, v in extra.items()}
    for needed in ("torch", "torchax", library):
        if importlib.util.find_spec(needed) is None:
            missing_reference(f"needs {needed} (.ci/run installs torchvision==0.28.0 and timm with --no-deps)")
    torchvision_stand_in()
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if library == "timm":
        import timm

        model = timm.create_model(constructor, pretrained=False, num_classes=CLASSES, **extra)
    else:
        import torchvision

        model = getattr(torchvision.models, constructor)(weights=None, num_classes=CLASSES, **extra)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        for pname, p in model.named_parameters():
            if "layer_scale" in pname or pname.endswith("gamma"):   # ConvNeXt's 1e-6 scales: let blocks count
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
    return torch, model.eval()


def layer_module(model, layer):
    """The submodule pytorch-grad-cam's notation names (``layer4[-1]``, ``blocks[-1].norm1``)."""
    return eval("model." + layer, {"model": model})   # noqa: S307 - the fixed strings of ZOO


@pytest.mark.parametrize("name", list(ZOO))
def test_the_zoo_imports_explains_and_matches_the_references(name):
    torch, model = build(name)
    from ferjax.networks.importers import torch as importer

    layer = ZOO[name][2]
    net = importer.from_module(model, layer, size=SIZE, channels=3, labels=list(range(CLASSES)))
    images = np.random.default_rng(0).random((3, SIZE, SIZE, 3), np.float32)
    logits_close(torch, model, net, images)
    reshape = None
    if net.spec["tokens"]:
        (h, w), prefix = net.spec["tokens"]["grid"], net.spec["tokens"]["prefix"]

        def reshape(t):   # pytorch-grad-cam's ViT recipe, with the grid derived rather than hard-coded
            return t[:, prefix:, :].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)
    targets = [0, 3, 5]
    want = reference_raw_gradcam(torch, model, layer_module(model, layer), images, targets, reshape)
    got = np.asarray(activation.gradcam(net.features, net.head, net.params, images, np.asarray(targets),
                                        relu=False, normalize=False, upsample=False))
    assert got.shape == want.shape
    for g, w in zip(got, want):
        assert np.corrcoef(g.ravel(), w.ravel())[0, 1] >= 0.999, name
    # every dense convolution is rewritten, the depthwise ones keep XLA's grouped convolution, none is 'kept'
    counts = rewrite.count(net.features, net.params, images)
    assert counts["kept"] == 0 and counts["dense"] > 0, counts
    ep = perturbation.extremal_perturbation(net.features, net.head, net.params, images[:1], [2], max_iter=2,
                                          step=8, sigma=16)
    assert ep["masks"].shape == (1, 1, SIZE, SIZE) and np.isfinite(np.asarray(ep["masks"])).all()
