"""Attribution batches split over devices give the same maps as on one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ferjax.explain import activation, perturbation
from ferjax.networks import cnn
from ferjax.plumbing import devices

X = np.random.default_rng(0).random((5, 16, 16, 1), np.float32)
T, PAIRS = np.array([0, 1, 2, 3, 1]), np.array([[0, 1], [1, 2], [2, 3], [3, 0], [1, 3]])


def maps():
    """CAM, contrast GradCAM and fast-preset EP of a tiny net on 5 images, on the visible devices."""
    params, f, c = cnn.create("tiny", num_classes=4, channels=1, size=16, key=jax.random.key(3))
    return {"cam": activation.cam(f, c, params, X, T),
            "gradcam": activation.gradcam(f, c, params, X, PAIRS, relu=False),
            "ep": perturbation.extremal_perturbation(f, c, params, X, T, max_iter=6, step=2, sigma=3,
                                                    preset="fast")["masks"]}


SCRIPT = """
import json, sys, jax, numpy as np
sys.path.insert(0, {tests!r})
from test_sharding import maps
print(json.dumps({{"devices": jax.device_count(), **{{k: np.asarray(v).tolist() for k, v in maps().items()}}}}))
"""


def test_five_images_on_eight_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=os.path.dirname(__file__))], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    for name, value in maps().items():
        assert np.shape(result[name]) == value.shape  # the 3 padding rows are dropped
        np.testing.assert_allclose(result[name], np.asarray(value), rtol=1e-4, atol=1e-5, err_msg=name)


def test_split_batch_pads_to_the_device_count_and_checks_sizes():
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    n, params, a, b = devices.split_batch(mesh, {"w": np.ones(3)}, np.arange(3), np.arange(6).reshape(3, 2))
    assert n == 3 and a.shape[0] % mesh.size == 0 and a.shape[0] >= 3
    np.testing.assert_array_equal(np.asarray(a)[:3], np.arange(3))
    np.testing.assert_array_equal(np.asarray(b)[3:], np.repeat([[4, 5]], a.shape[0] - 3, 0))
    with pytest.raises(ValueError, match="leading size"):
        devices.split_batch(mesh, {}, np.arange(3), np.arange(4))


def test_an_images_ep_mask_does_not_depend_on_its_batch():
    # each device maps over its images one at a time, so the batch an image
    # arrives in (and its size) cannot change the rounding of its mask; a
    # vmapped batch of this 32-px network differed by ~1e-6
    x = np.random.default_rng(0).random((5, 32, 32, 1), np.float32)
    params, f, c = cnn.create("fine", num_classes=4, channels=1, size=32, key=jax.random.key(3))
    kw = dict(max_iter=10, step=2, sigma=3, preset="fast")
    whole = perturbation.extremal_perturbation(f, c, params, x, T, **kw)["masks"]
    one_by_one = [perturbation.extremal_perturbation(f, c, params, x[i:i + 1], T[i:i + 1], **kw)["masks"]
                  for i in range(len(x))]
    np.testing.assert_array_equal(np.asarray(whole), np.concatenate([np.asarray(m) for m in one_by_one]))


DEVICES = """
import os, sys
{before}
import jax
from ferjax.plumbing import devices
{after}
print(len(jax.devices("cpu")), devices.automatic())
"""


@pytest.mark.parametrize("situation, env, before, after, want", [
    ("plain import", {}, "", "", "cores"),
    ("a host program ran JAX first", {}, "import jax.numpy as jnp; jnp.ones(1)", "", 1),
    ("XLA_FLAGS chose", {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}, "", "", 3),
    ("JAX_NUM_CPU_DEVICES chose", {"JAX_NUM_CPU_DEVICES": "1"}, "", "", 1),
    ("opted out", {"FERJAX_CPU_DEVICES": "1"}, "", "", 1),
    ("the CLI's --cpu-devices", {}, "", "devices.set_cpu_devices(1)", 1),
    ("a multi-process job", {}, "", "devices.one_per_process()", 1),
])
def test_one_cpu_device_per_core_unless_something_chose(situation, env, before, after, want):
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FERJAX_CPU_DEVICES",
                                                              "JAX_NUM_CPU_DEVICES", "JAX_PLATFORMS")}
    out = subprocess.run([sys.executable, "-c", DEVICES.format(before=before, after=after)], env={**clean, **env},
                         capture_output=True, text=True, check=True, timeout=120).stdout.split()
    want = devices.cores() if want == "cores" else want
    assert int(out[0]) == want, situation
    assert (out[1] == "True") == (situation == "plain import" and want > 1)


def test_training_with_the_automatic_count_takes_the_devices_that_divide_its_batch():
    if devices.cores() < 2:
        pytest.skip("needs 2 cores")
    script = ("import jax\nfrom ferjax.plumbing import devices\n"
              "print(devices.data_mesh(divides=3).size, devices.data_mesh(divides=2 * jax.device_count()).size,"
              " devices.data_mesh().size)")
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FERJAX_CPU_DEVICES")}
    out = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    n = devices.cores()
    assert [int(v) for v in out] == [max(k for k in (1, 3) if k <= n), n, n]
