"""Where a benchmark's figures go: ``benchmarks/<name>.json``, with the machine and the command that made them.

The README and docs/ quote speed figures from these files, and a test
(tests/test_docs.py) fails when a quoted figure and its file disagree. So
every benchmark writes its results here as well as printing them.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    """The machine and software a measurement ran on."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = jax.devices()
    versions = {}
    for name in ("jax", "jaxlib", "torch", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": devices[0].platform,
            "device": devices[0].device_kind, "devices": len(devices),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": versions}


def _context() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"command": " ".join(["python", *sys.argv]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit, "machine": machine()}


def write(name: str, results: dict, *, out: Path | None = None) -> Path:
    """Write ``results`` with the machine, the time, the git commit and the command line; returns the path."""
    path = out or HERE / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **_context(), "results": results}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def update(name: str, key: str, results: dict) -> Path:
    """Add or replace one configuration's ``results`` under ``key`` in ``benchmarks/<name>.json``.

    For a benchmark measured by several commands (one process, several processes, ...): each keeps
    its own command line, time and machine beside its figures.
    """
    path = HERE / f"{name}.json"
    record = json.loads(path.read_text()) if path.exists() else {"benchmark": name, "results": {}}
    record["results"][key] = {**_context(), **results}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path} [{key}]")
    return path
