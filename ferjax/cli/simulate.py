"""The `simulate` stage: simulated participants do the reveal-and-choose task and write reference-format logs."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
from tqdm import tqdm

from ferjax.faces.datasets import read_ground_truth
from ferjax.people import clicklogs, simulation
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


@click.command()
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli` (trials.csv, optional regions.npz).")
@click.option("--participants", "n_participants", type=click.IntRange(1), default=22, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--radius", type=click.FloatRange(0, min_open=True), default=15.0, show_default=True,
              help="Reveal-disk radius in display pixels.")
@click.option("--display-size", type=click.IntRange(16), default=256, show_default=True)
@click.option("--reading-noise", type=click.FloatRange(0), default=None,
              help="SD of a person's reading of each action unit's intensity, per trial (default 0.05). The "
                   "faces' own ambiguity is shared by everyone; this noise is each person's own: 0 makes everyone "
                   "read a face the same way (errors highly consistent across people), larger values make errors "
                   "more idiosyncratic and lower percent correct.")
@click.option("--behaviour", "behaviour_json", default="{}", show_default=True,
              help="JSON object overriding other participant behaviour (criterion, collapse, sensitivity, lapse, "
                   "give_up, ...; see ferjax.people.simulation.Behaviour).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Log folder to write.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@_user_errors
def simulate(stimuli_dir, n_participants, seed, radius, display_size, reading_noise, behaviour_json, out,
             metrics):
    """Run simulated participants through the reveal-and-choose task.

    Writes click logs in exactly the reference program's layout: one folder
    OUT/<yymmdd>_<participant> per person with choices.csv
    (filename,true,false,chosen,correct,time,count) and clicks.csv
    (filename,x_pos,y_pos,time). METRICS gets percent correct (0-click trials
    scored wrong, as in the reference), clicks and time per trial, the
    hardest and easiest pairs, and how much people agree on which faces are
    hard: person-to-person error consistency (Cohen's kappa of the
    correct/wrong pattern, Geirhos et al. 2020) with a bootstrap interval over
    stimuli, the spread of per-image percent correct and the pair-accuracy
    range beside the reference study's. These are simulated people, not data.

    Params (section `simulate`): participants, seed, radius, display_size,
    reading_noise, behaviour (see ferjax.people.simulation.Behaviour).
    """
    import json

    trials_csv = Path(stimuli_dir) / "trials.csv"
    if not trials_csv.exists():
        raise InputError(trials_csv, None, "file not found", "run `ferjax stimuli` first")
    trials = pd.read_csv(trials_csv)
    masks = intensities = None
    regions_npz = Path(stimuli_dir) / "regions.npz"
    if regions_npz.exists():
        intensities, masks = read_ground_truth(regions_npz, list(trials["filename"]))
    try:
        overrides = json.loads(behaviour_json)
        if reading_noise is not None:
            overrides["reading_noise"] = reading_noise
        behaviour = simulation.Behaviour(**overrides)
    except (TypeError, ValueError) as err:
        raise InputError("--behaviour", None, f"not valid behaviour settings ({err})") from None
    log, clicks, dates = simulation.simulate(
        list(trials["filename"]), trials["true"].to_numpy(), trials["foil"].to_numpy(), masks,
        intensities, participants=n_participants, seed=seed, display=display_size, radius=radius,
        behaviour=behaviour, progress=tqdm(total=n_participants, desc="participants", disable=None, leave=False))
    with files.atomic_path(out, directory=True) as tmp:
        clicklogs.save_reference(log, clicks, tmp, dates)
        files.write_json(tmp / "provenance.json", stamp(
            {"participants": n_participants, "seed": seed, "radius": radius, "display_size": display_size,
             "behaviour": vars(behaviour)}, study="simulated participants (ferjax.people.simulation), not people"))
    summary = simulation.summarise(log)
    if metrics:
        files.write_json(metrics, {"synthetic": True, **summary})
    click.echo(f"{n_participants} simulated participants: {summary['percent_correct']:.3f} correct, "
               f"median {summary['clicks_median']:g} clicks per trial")
