"""What produced a result: package versions and parameters, stored beside it."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

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


def source_digest(root: Path | str | None = None) -> str:
    """sha256 of the package's Python sources (relative paths and bytes), hex.

    A result cached under a key that includes it (a training checkpoint) is
    only reused by the same code: ``dvc repro`` reruns a stage when ``ferjax/``
    changes, and resuming the old code's finished run would skip the rerun.
    """
    root = Path(root) if root is not None else Path(__file__).parents[1]   # the ferjax package
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
