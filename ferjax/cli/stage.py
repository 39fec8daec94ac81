"""Read a stage's section of ``params.yaml`` and turn it into CLI options."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def section(name: str, path="params.yaml") -> dict:
    """The ``name`` section of the params file, as a dict."""
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if name not in params:
        raise KeyError(f"{path} has no section '{name}'")
    return params[name]


def as_options(values: dict) -> list[str]:
    """``{"stimuli_per_class": 35, "skip_bad": True}`` -> ``["--stimuli-per-class", "35", "--skip-bad"]``.

    None leaves an option unset, booleans become flags, dicts and lists JSON.
    """
    args = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (dict, list)):
            args += [flag, json.dumps(value, sort_keys=True)]
        else:
            args += [flag, str(value)]
    return args


def run_stage(name: str, **paths) -> None:
    """Run CLI subcommand ``name`` with its params section plus explicit ``paths``.

    A ``cpu_devices`` key in the section is the ``ferjax`` group's option
    (``ferjax --cpu-devices N <name> ...``), not the subcommand's.
    """
    from ferjax.cli import main

    options = dict(section(name))
    devices = options.pop("cpu_devices", None)
    group = as_options({"cpu_devices": devices})
    args = [*group, name, *as_options(options), *as_options({k: str(Path(v)) for k, v in paths.items()})]
    main(args, prog_name="ferjax")
