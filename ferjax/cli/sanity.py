"""The `sanity` stage: do the explanations explain the network? (Pointing game, model randomisation.)"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ferjax.cli.launch import multihost
from ferjax.explain.checks import sanity_checks, sanity_text
from ferjax.faces import images
from ferjax.faces.datasets import read_ground_truth
from ferjax.networks import saved
from ferjax.networks.interface import input_hw
from ferjax.plumbing import distributed, files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


def read_inputs(model_dir, stimuli_dir, attr_dir, index):
    """What the checks need from disk: ``(network, stimuli, ep_settings, ground_truth)``.

    The network (`ferjax network`'s folder), the stimuli of ``index`` as its
    input, the settings the attribution ran Extremal Perturbation with (its
    provenance.json) and the stimuli's action-unit ground truth
    (stimuli/regions.npz; None without it).
    """
    network = saved.load_network(model_dir)
    spec = network[3]
    prov_path = Path(attr_dir) / "provenance.json"
    try:
        ep_settings = json.loads(prov_path.read_text())["params"]
    except (OSError, ValueError, KeyError) as err:
        raise InputError(prov_path, None, f"cannot read the attribution settings ({err})",
                         "re-run `ferjax attribute`") from None
    filenames = list(index["filename"])
    stimuli = images.to_model_input(images.read_stimuli(stimuli_dir, filenames, spec["channels"]), input_hw(spec),
                                    spec["channels"])
    regions_npz = Path(stimuli_dir) / "regions.npz"
    ground_truth = read_ground_truth(regions_npz, filenames) if regions_npz.exists() else None
    return network, stimuli, ep_settings, ground_truth


@click.command("sanity")
@click.option("--network", "--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax network`.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli` (regions.npz holds the action-unit ground truth, if any).")
@click.option("--attribution", "attr_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax attribute` (its maps, and the settings EP is re-run with).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the randomised networks.")
@click.option("--pointing-tolerance", type=click.FloatRange(0), default=15.0, show_default=True,
              help="Pointing game: a peak this many pixels from the AU regions still hits, in pixels at 224 px "
                   "(Zhang et al.'s 15), scaled to the map side: 4.3 px at 64. Strict rates (0) are reported too.")
@click.option("--pointing-ep-areas", default="0.025,0.05,0.1,0.2", show_default=True,
              help="Pointing game: also re-run Extremal Perturbation at these areas and point with the sum of its "
                   "masks, as TorchRay's pointing-game benchmark does (empty: score the saved EP maps only).")
@click.option("--randomize-ep-images", type=click.IntRange(0), default=16, show_default=True,
              help="Model randomisation test: stimuli Extremal Perturbation is re-run on (0: leave EP out).")
@click.option("--randomize-draws", type=click.IntRange(1), default=5, show_default=True,
              help="Model randomisation test: random re-initialisations averaged over.")
@click.option("--metrics", type=click.Path(path_type=Path), required=True, help="JSON file to write the checks to.")
@multihost
@_user_errors
def sanity_cmd(model_dir, stimuli_dir, attr_dir, seed, pointing_tolerance, pointing_ep_areas, randomize_ep_images,
               randomize_draws, metrics):
    """Check that the explanations explain the network, before comparing them with people.

    Two checks from the attribution literature, on the `attribute` stage's
    maps and settings:

    \b
    pointing game (Zhang et al. 2016, as TorchRay's benchmark plays it): is
      the peak of each method's true-class map within the tolerance of the
      expression's action-unit regions, on the correctly classified stimuli
      with AU ground truth (stimuli/regions.npz; skipped without it);
    model randomisation (Adebayo et al. 2018): the Spearman correlation of
      the trained network's maps with those of the network re-initialised
      from the head down ('head') and entirely ('all'); a method whose maps
      barely change is not explaining the network (below 0.5 passes).

    METRICS gets both, with per-class pointing rates and per-draw
    correlations; the log prints them. The `compare` stage shows them in the
    report.

    Params (section `sanity`): seed, pointing_tolerance, pointing_ep_areas,
    randomize_ep_images, randomize_draws.

    Over several processes the re-run maps are split over all their
    devices; each process reads the stimuli (a few hundred small images).
    """
    try:
        ep_areas = tuple(float(a) for a in str(pointing_ep_areas).split(",") if a.strip())
    except ValueError:
        raise InputError("--pointing-ep-areas", None, f"not a list of numbers: {pointing_ep_areas!r}",
                         "give areas in (0, 1) separated by commas, e.g. 0.025,0.05,0.1,0.2") from None
    if any(not 0 < a < 1 for a in ep_areas):
        raise InputError("--pointing-ep-areas", None, f"areas must lie in (0, 1), got {pointing_ep_areas!r}",
                         "give areas in (0, 1) separated by commas, e.g. 0.025,0.05,0.1,0.2")
    index_csv = Path(attr_dir) / "index.csv"
    try:
        index = pd.read_csv(index_csv)
        with np.load(Path(attr_dir) / "maps.npz") as z:
            maps = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise InputError(attr_dir, None, f"cannot read the attribution ({err})", "run `ferjax attribute` first") \
            from None
    network, stimuli, ep_settings, ground_truth = read_inputs(model_dir, stimuli_dir, attr_dir, index)
    checks = sanity_checks(network, stimuli, index, maps, ep_settings, ground_truth, seed=seed,
                           tolerance=pointing_tolerance, ep_areas=ep_areas, ep_images=randomize_ep_images,
                           draws=randomize_draws)
    checks["settings"] = stamp({"seed": seed, "pointing_tolerance": pointing_tolerance,
                                "pointing_ep_areas": list(ep_areas), "randomize_ep_images": randomize_ep_images,
                                "randomize_draws": randomize_draws})
    if distributed.is_writer():
        files.write_json(metrics, checks)
        click.echo(sanity_text(checks))
