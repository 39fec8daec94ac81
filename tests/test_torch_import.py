"""The PyTorch importer on the networks researchers bring: blocks that end in a functional operation, token
layers, a final softmax, non-square inputs, and checkpoints saved as a state_dict.

Every network is checked against torch itself (logits) and pytorch-grad-cam (GradCAM at the same layer,
the signed map before ReLU and scaling). CI installs torch, torchax and grad-cam.
"""

import argparse
import importlib.util

import jax
import numpy as np
import pytest
from conftest import missing_reference

from ferjax.explain import activation, perturbation
from ferjax.networks.importers import exported
from ferjax.networks.interface import Cut
from ferjax.plumbing.errors import InputError

MODEL = "models.torch.expression_cnn:ExpressionCNN"


@pytest.fixture(scope="module")
def torch():
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchax") is None:
        missing_reference("needs pip install torch==2.13.0 'ferjax[torch]'")
    import torch

    torch.set_num_threads(1)
    return torch


def expression_cnn(torch, **kwargs):
    from models.torch import expression_cnn

    torch.manual_seed(0)
    return expression_cnn.randomise(expression_cnn.ExpressionCNN(**kwargs))


def nchw(torch, images):
    return torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())


def logits_close(torch, module, net, images, tol=1e-4):
    with torch.no_grad():
        want = module(nchw(torch, images)).numpy()
    got = np.asarray(net.logits(images))
    assert np.abs(got - want).max() <= tol * np.ptp(want), np.abs(got - want).max() / np.ptp(want)
    return want


def reference_raw_gradcam(torch, module, layer_module, images, targets, reshape_transform=None):
    """pytorch-grad-cam's own signed GradCAM map (``get_cam_image``) at the layer, (N, h, w)."""
    import types

    from test_attribution import _import_references

    _, pgc = _import_references(torchray=False)
    from pytorch_grad_cam.utils import image as pgc_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = nchw(torch, images)
    # the upsampled maps are not compared (cv2 may be a stand-in): any array of the asked size will do
    blank = types.SimpleNamespace(resize=lambda img, size: np.zeros(tuple(size)[::-1], np.float32))
    old, pgc_image.cv2 = pgc_image.cv2, blank
    try:
        with pgc.GradCAM(model=module, target_layers=[layer_module], reshape_transform=reshape_transform) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
            ag = cam.activations_and_grads
            return cam.get_cam_image(x, layer_module, None, ag.activations[0].numpy(), ag.gradients[0].numpy())
    finally:
        pgc_image.cv2 = old


def gradcam_matches(torch, module, layer_module, net, images, targets, reshape_transform=None):
    want = reference_raw_gradcam(torch, module, layer_module, images, targets, reshape_transform)
    got = np.asarray(activation.gradcam(net.features, net.head, net.params, images, np.asarray(targets),
                                        relu=False, normalize=False, upsample=False))
    for g, w in zip(got, want):
        assert np.corrcoef(g.ravel(), w.ravel())[0, 1] >= 0.999
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_a_block_ending_in_relu_of_a_residual_sum_is_cut_after_it(torch):
    from ferjax.networks.importers import torch as importer

    module = expression_cnn(torch, channels=3)
    images = np.random.default_rng(0).random((3, 32, 32, 3), np.float32)
    for layer in ("blocks.2", "blocks[-1]"):
        net = importer.from_module(module, layer, size=32, channels=3)
        assert net.spec["layer"] == "blocks.2" and net.spec["carry"] == 0
        assert net.features(net.params, images).shape == (3, 8, 8, 64)   # after the block's F.relu
        logits_close(torch, module, net, images)
    gradcam_matches(torch, module, module.blocks[-1], net, images, [0, 3, 5])
    # cut inside a block too: its first convolution's output, the residual input carried past it
    inner = importer.from_module(module, "blocks[1].bn1", size=32, channels=3)
    assert isinstance(inner.features(inner.params, images), Cut) and inner.spec["carry"] == 1
    logits_close(torch, module, inner, images)
    gradcam_matches(torch, module, module.blocks[1].bn1, inner, images, [1, 2, 4])


class TinyViT:
    """A two-block vision transformer in torch (patch embedding, class token, pre-norm blocks with
    nn.MultiheadAttention), built on demand so that importing this file needs no torch."""

    @staticmethod
    def build(torch, size=32, patch=8, dim=16, classes=4):
        nn = torch.nn

        class Blk(nn.Module):
            def __init__(self):
                super().__init__()
                self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
                self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
                self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

            def forward(self, x):
                h = self.norm1(x)
                x = x + self.attn(h, h, h, need_weights=False)[0]
                return x + self.mlp(self.norm2(x))

        class ViT(nn.Module):
            def __init__(self):
                super().__init__()
                self.patch_embed = nn.Conv2d(3, dim, patch, patch)
                self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
                self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.1)
                self.blocks = nn.Sequential(Blk(), Blk())
                self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

            def forward(self, x):
                x = self.patch_embed(x).flatten(2).transpose(1, 2)
                x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
                return self.head(self.norm(self.blocks(x))[:, 0])

        torch.manual_seed(0)
        return ViT().eval()


def test_a_vit_is_explained_on_its_patch_grid_with_the_class_token_and_residual_carried(torch):
    from ferjax.networks.importers import torch as importer

    module = TinyViT.build(torch)
    images = np.random.default_rng(1).random((4, 32, 32, 3), np.float32)
    net = importer.from_module(module, "blocks[-1].norm1", size=32, channels=3)
    assert net.spec["tokens"] == {"grid": [4, 4], "prefix": 1} and net.spec["carry"] == 2
    out = net.features(net.params, images)
    assert out.maps.shape == (4, 4, 4, 16) and [c.shape for c in out.carry] == [(4, 1, 16), (4, 17, 16)]
    logits_close(torch, module, net, images)

    def reshape_transform(t):   # pytorch-grad-cam's documented ViT recipe: drop the class token
        return t[:, 1:, :].reshape(t.size(0), 4, 4, t.size(2)).permute(0, 3, 1, 2)
    gradcam_matches(torch, module, module.blocks[-1].norm1, net, images, [0, 1, 2, 3], reshape_transform)
    with pytest.raises(ValueError, match="carried across the cut"):
        activation.cam(net.features, net.head, net.params, images, [0, 1, 2, 3])
    ep = perturbation.extremal_perturbation(net.features, net.head, net.params, images[:1], [2], max_iter=3,
                                          step=4, sigma=8)
    assert np.isfinite(np.asarray(ep["masks"])).all()


@pytest.mark.parametrize("final", ["softmax", "log_softmax"])
def test_a_final_softmax_is_left_out(torch, final):
    from ferjax.networks.importers import torch as importer

    with_softmax = expression_cnn(torch, final=final)
    plain = expression_cnn(torch)
    images = np.random.default_rng(2).random((2, 24, 24, 1), np.float32)
    net = importer.from_module(with_softmax, "blocks[-1]", size=24, channels=1)
    assert net.spec["logits"] == f"before the final {final}(dim=1) (left out)"
    logits_close(torch, plain, net, images)


def test_non_square_inputs_end_to_end(torch, tmp_path):
    from ferjax.networks.importers import torch as importer

    module = expression_cnn(torch)
    images = np.random.default_rng(3).random((2, 64, 48, 1), np.float32)
    net = importer.from_module(module, "blocks[-1]", size=(64, 48), channels=1)
    assert net.spec["size"] == [64, 48]
    want = logits_close(torch, module, net, images)
    assert activation.gradcam(net.features, net.head, net.params, images, [0, 1]).shape == (2, 64, 48)
    ep = perturbation.extremal_perturbation(net.features, net.head, net.params, images, [0, 1], max_iter=2, step=4,
                                          sigma=8)
    assert ep["masks"].shape == (2, 1, 64, 48)
    exported.save(tmp_path / "e", net)
    np.testing.assert_allclose(exported.load(tmp_path / "e").logits(images), want, rtol=1e-4, atol=1e-5)


def test_state_dict_checkpoints_load_weights_only(torch, tmp_path):
    from ferjax.networks.importers import torch as importer

    module = expression_cnn(torch, num_classes=7)
    images = np.random.default_rng(4).random((2, 32, 32, 1), np.float32)
    path = tmp_path / "ckpt.pt"
    # as training scripts save them: nested in a dict with the epoch, DataParallel's "module." prefix
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in module.state_dict().items()}}, path)
    net = importer.load(path, "blocks[-1]", size=32, channels=1, model=MODEL, model_kwargs={"num_classes": 7},
                        labels="fer2013")
    logits_close(torch, module, net, images)
    assert net.spec["model"] == MODEL and net.spec["labels"] == [6, 5, 4, 1, 2, 3, 0]
    with pytest.raises(InputError, match=r"ckpt.pt: model: does not fit .*size mismatch for fc.weight"):
        importer.load(path, "blocks[-1]", size=32, channels=1, model=MODEL, model_kwargs={"num_classes": 8})
    with pytest.raises(InputError, match="model: cannot import nowhere.to.be.found:Net"):
        importer.load(path, "blocks[-1]", size=32, channels=1, model="nowhere.to.be.found:Net")
    # a checkpoint that pickles other objects is refused by name; a whole module only with allow_pickle
    torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": module.state_dict()}, tmp_path / "args.pt")
    with pytest.raises(InputError, match="it pickles argparse.Namespace"):
        importer.load(tmp_path / "args.pt", "blocks[-1]", size=32, channels=1, model=MODEL,
                      model_kwargs={"num_classes": 7})
    torch.save(module, tmp_path / "whole.pt")
    with pytest.raises(InputError, match="unpickling runs code the file names"):
        importer.load(tmp_path / "whole.pt", "blocks[-1]", size=32, channels=1)
    whole = importer.load(tmp_path / "whole.pt", "blocks[-1]", size=32, channels=1, allow_pickle=True,
                          labels=[6, 5, 4, 1, 2, 3, 0])
    logits_close(torch, module, whole, images)


def test_unknown_layers_name_the_modules(torch):
    from ferjax.networks.importers import torch as importer

    with pytest.raises(InputError, match=r"layer 'blocks\[7\]'.*top-level submodules: blocks, fc, s"):
        importer.from_module(expression_cnn(torch), "blocks[7]", size=32, channels=1)


def test_exports_declare_cpu_and_cuda(tmp_path):
    """Made on this CPU, the exported network also holds a CUDA lowering (checked by its declared platforms: no
    GPU runs it here)."""
    from jax import export as jexport
    from test_network import images, plain_cnn

    from ferjax.networks.interface import Head, Network

    params, features, classifier = plain_cnn("NCHW")
    net = Network(features, Head(lambda p, a: classifier(p, a.mean((1, 2)))), params,
                  {"size": 16, "channels": 3, "labels": [0, 1, 2, 3]})
    exported.save(tmp_path / "e", net)
    import json

    assert json.loads((tmp_path / "e/model.json").read_text())["platforms"] == ["cpu", "cuda"]
    for name in ("features", "head"):
        blob = (tmp_path / "e" / f"{name}.jaxexport").read_bytes()
        assert jexport.deserialize(bytearray(blob)).platforms == ("cpu", "cuda")
    x = images()
    np.testing.assert_allclose(exported.load(tmp_path / "e").logits(x), net.logits(x), rtol=1e-5, atol=1e-5)
    assert jax.devices()[0].platform == "cpu"
