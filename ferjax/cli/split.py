"""The `split` stage: each image's role, train / val / test / stimulus."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from ferjax.faces import selection
from ferjax.faces.datasets import (
    load_prepared,
)
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


@click.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Output of `ferjax prepare`.")
@click.option("--val", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--test", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--stimuli-per-class", type=click.IntRange(0), default=35, show_default=True,
              help="Images per class held out as 2AFC stimuli (reference: 35).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@_user_errors
def split(dataset, val, test, stimuli_per_class, seed, out, metrics):
    """Assign each image a role: train, val, test or stimulus.

    Stratified by class. Stimuli come first and never appear in the network's
    train, validation or test sets. Writes OUT/splits.csv (name, label, role)
    and OUT/provenance.json; METRICS gets the counts per role.

    Params (section `split`): val, test, stimuli_per_class, seed.
    """
    ds = load_prepared(dataset)
    try:
        roles = selection.split_roles(ds["labels"], val=val, test=test,
                                 stimuli_per_class=stimuli_per_class, seed=seed)
    except ValueError as err:
        raise InputError(dataset, "labels", str(err), "lower split.stimuli_per_class") from None
    table = pd.DataFrame({"name": ds["names"], "label": ds["labels"], "role": roles})
    params = {"val": val, "test": test, "stimuli_per_class": stimuli_per_class, "seed": seed}
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "splits.csv", table)
        files.write_json(tmp / "provenance.json", stamp(params))
    if metrics:
        files.write_json(metrics, {r: int((roles == r).sum()) for r in selection.ROLES})
    click.echo(", ".join(f"{r}: {int((roles == r).sum())}" for r in selection.ROLES))
