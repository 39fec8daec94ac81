"""Networks trained elsewhere: Flax linen, PyTorch (torchax) and Keras (fer's FER2013 model).

Each imported network is checked against the reference implementations on
the same weights (pytorch-grad-cam's GradCAM, TorchRay's Extremal
Perturbation) or against its own library's outputs (Keras's predict), and
bad files give one clear error. CI installs Keras, torchax and fer (without
its dependencies: only its model file is used).
"""

import importlib.util
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import missing_reference
from test_attribution import (
    _identity_resize,
    _import_references,
    _pearson,
    blob_images,
    tiny_blob_net,
    torch_net,
)

from ferjax.explain import activation, perturbation
from ferjax.networks.importers import LABEL_MAPS, exported
from ferjax.networks.interface import Head, Network
from ferjax.plumbing.errors import InputError

EP = dict(areas=(0.1,), max_iter=300, step=3, sigma=6)


def _references(net_torch, layer_module, images, targets):
    """pytorch-grad-cam's GradCAM maps and TorchRay's EP masks of a torch module on NHWC images."""
    tr_ep, pgc = _import_references()
    import torch
    from pytorch_grad_cam.utils import image as pgc_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())
    old, pgc_image.cv2 = pgc_image.cv2, types.SimpleNamespace(resize=_identity_resize)
    try:
        with pgc.GradCAM(model=net_torch, target_layers=[layer_module]) as explainer:
            gradcam = explainer(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        pgc_image.cv2 = old
    masks = []
    for img, t in zip(np.asarray(images), targets):
        m, _ = tr_ep.extremal_perturbation(net_torch, torch.from_numpy(img.transpose(2, 0, 1)[None].copy()), int(t),
                                           **{**EP, "areas": list(EP["areas"])})
        masks.append(m.numpy()[:, 0])
    return gradcam, np.stack(masks)


def _matches_references(net: Network, ref_gradcam, ref_masks, images, targets):
    ours = np.asarray(activation.gradcam(net.features, net.head, net.params, images, np.asarray(targets)))
    for r, g in zip(ref_gradcam, ours):
        assert _pearson(r, g) >= 0.999
    masks = np.asarray(perturbation.extremal_perturbation(net.features, net.head, net.params, images,
                                                         np.asarray(targets), **EP)["masks"])
    r = [_pearson(masks[i, 0], ref_masks[i, 0]) for i in range(len(images))]
    area_diff = np.abs((masks > 0.5).mean(axis=(2, 3)) - (ref_masks > 0.5).mean(axis=(2, 3)))
    assert np.mean(r) >= 0.8 and area_diff.max() <= 0.02, (r, area_diff)


def test_a_flax_linen_cnn_matches_the_references():
    from flax import linen as nn

    class Cnn(nn.Module):   # split at a named layer: its features and head as methods
        def setup(self):
            self.conv = nn.Conv(2, (3, 3), padding="SAME")
            self.fc = nn.Dense(2)

        def __call__(self, x):
            return self.head(self.features(x))

        def features(self, x):
            return nn.relu(self.conv(x))

        def head(self, a):
            return self.fc(a.mean(axis=(1, 2)))

    blob, _, _ = tiny_blob_net()
    model = Cnn()
    variables = {"params": {"conv": {"kernel": blob["conv"], "bias": blob["conv_b"]},
                            "fc": {"kernel": blob["W"], "bias": blob["b"]}}}
    net = Network(lambda v, x: model.apply(v, x, method=Cnn.features),
                  Head(lambda v, a: model.apply(v, a, method=Cnn.head)), variables, {})
    images = blob_images()
    ported = torch_net(blob)
    gradcam, masks = _references(ported, ported.relu, images, [0, 0])
    _matches_references(net, gradcam, masks, images, [0, 0])


def test_a_torch_cnn_imported_through_torchax_matches_the_references(tmp_path):
    _import_references()
    if importlib.util.find_spec("torchax") is None:
        missing_reference("needs pip install 'ferjax[torch]'")
    from ferjax.networks.importers import torch as torch_importer

    blob, _, _ = tiny_blob_net()
    module = torch_net(blob)
    net = torch_importer.from_module(module, "relu", size=32, channels=3)
    assert net.spec["head_params"] == ["fc"] and net.spec["num_outputs"] == 2
    images = blob_images()
    import torch

    with torch.no_grad():
        want = module(torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(net.logits(images), want, atol=1e-5)
    gradcam, masks = _references(module, module.relu, images, [0, 0])
    _matches_references(net, gradcam, masks, images, [0, 0])
    # saved in ferjax's exported format, it loads without torch and gives the same network
    again = _roundtrip(net, tmp_path / "exported")
    np.testing.assert_allclose(again.logits(images), want, atol=1e-5)


def _roundtrip(net, folder):
    exported.save(folder, net)
    return exported.load(folder)


# --------------------------------------------------------------------- Keras: fer's FER2013 network

def _astronaut_face():
    import skimage.color
    import skimage.data
    import skimage.transform

    face = skimage.data.astronaut()[56:171, 167:282]     # the box fer's own face detector finds
    gray = skimage.color.rgb2gray(face)
    return skimage.transform.resize(gray, (64, 64), order=1, anti_aliasing=False).astype(np.float32)[None, ..., None]


def test_fer_network_reproduces_keras_on_a_real_face(fer):
    _, model, net = fer
    x = _astronaut_face()
    want = np.asarray(model((x - 0.5) * 2.0))      # Keras's own forward pass (predict would donate the weights)
    got = np.asarray(jax.nn.softmax(net.logits(jnp.asarray(x))))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert int(np.argmax(got)) == 3 and net.spec["labels"][3] == 1          # happy, AffectNet's class 1
    assert net.spec["size"] == 64 and net.spec["channels"] == 1 and net.spec["logits"] == "before the final softmax (left out)"


def test_fer_gradcam_equals_one_written_with_jax_grad_on_stateless_call(fer):
    import keras

    _, model, net = fer
    x = np.concatenate([_astronaut_face(), _astronaut_face()[:, ::-1]])
    split = model.get_layer("add_4").output
    trunk, rest = keras.Model(model.inputs[0], split), keras.Model(split, model.get_layer("predictions").input)

    def call(m, inputs):
        out, _ = m.stateless_call([v.value for v in m.trainable_variables],
                                  [v.value for v in m.non_trainable_variables], inputs, training=False)
        return out

    targets = np.array([3, 5])
    maps = call(trunk, jnp.asarray((x - 0.5) * 2.0))
    grads = jax.grad(lambda a: call(rest, a)[jnp.arange(2), targets].sum())(maps)
    raw = jax.nn.relu(jnp.einsum("nhwk,nk->nhw", maps, grads.mean(axis=(1, 2))))
    up = jax.image.resize(raw, (2, 64, 64), "bilinear")
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    want = (up - lo) / (hi - lo + 1e-7)
    got = activation.gradcam(net.features, net.head, net.params, x, targets)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_fer_head_is_not_for_cam_but_its_last_layer_is(fer):
    _, model, net = fer
    x = _astronaut_face()
    with pytest.raises(ValueError, match="depends on where in the maps"):
        activation.cam(net.features, net.head, net.params, x, np.array([3]))
    from ferjax.networks.importers import keras as keras_importer

    last = keras_importer.from_model(model, "conv2d_7", labels=LABEL_MAPS["fer2013"], mean=0.5, std=0.5)
    maps = last.features(last.params, jnp.asarray(x))     # (1, 4, 4, 7): one map per class, then pooling
    cam = activation.cam(last.features, last.head, last.params, x, np.array([3]), relu=False, normalize=False,
                          upsample=False)
    np.testing.assert_allclose(cam[0], maps[0, :, :, 3], atol=1e-5)


def test_bad_keras_files_and_layers_give_one_clear_error(fer, tmp_path):
    path, model, _ = fer
    from ferjax.networks.importers import keras as keras_importer

    with pytest.raises(InputError, match="layer 'nope': no layer of that name.*add_4"):
        keras_importer.from_model(model, "nope", where=path)
    junk = tmp_path / "model.h5"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a Keras model") as err:
        keras_importer.load(junk, "add_4")
    assert "\n" not in err.value.line()
    with pytest.raises(InputError, match="file not found"):
        keras_importer.load(tmp_path / "missing.keras", "add_4")
    with pytest.raises(InputError, match="needs 4-D"):
        keras_importer.from_model(model, "global_average_pooling2d_1", where=path)
