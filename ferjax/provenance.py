"""What produced a result: package versions and parameters, stored beside it."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("ferjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy",
             "pandas", "pillow", "dvc")


def versions() -> dict:
    """Python and package versions of this environment."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def stamp(params: dict, **extra) -> dict:
    """A provenance record: the parameters that produced a result and the versions used."""
    return {"params": params, "versions": versions(), **extra}
