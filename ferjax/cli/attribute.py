"""The `attribute` stage: explain the studied network with CAM, GradCAM and Extremal Perturbation."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from ferjax.cli.launch import multihost
from ferjax.explain import stimuli
from ferjax.faces import images
from ferjax.faces.labels import NAMES
from ferjax.networks import answers, interface, saved
from ferjax.plumbing import devices, distributed, files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp
from ferjax.report import figures


@click.command("attribute")
@click.option("--network", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax network` (or a `ferjax train` model folder).")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`.")
@click.option("--areas", default="0.1", show_default=True,
              help="Comma-separated Extremal Perturbation areas (fractions of the image).")
@click.option("--variant", type=click.Choice(["preserve", "delete", "dual"]), default="preserve", show_default=True)
@click.option("--max-iter", type=click.IntRange(1), default=800, show_default=True)
@click.option("--step", type=click.IntRange(1), default=7, show_default=True)
@click.option("--sigma", type=click.FloatRange(0, min_open=True), default=21.0, show_default=True)
@click.option("--scale-to", type=click.IntRange(1), default=224, show_default=True,
              help="Scale step and sigma by image size / SCALE_TO (TorchRay's defaults suit 224 px).")
@click.option("--jitter/--no-jitter", default=True, show_default=True)
@click.option("--preset", type=click.Choice(["faithful", "fast"]), default="faithful", show_default=True,
              help="faithful: TorchRay's SGD schedule; fast: Nesterov momentum, its learning rate held for a "
                   "quarter of MAX_ITER then decayed to 0, the area weight's growth rescaled to MAX_ITER (a "
                   "deliberate change, for few iterations; benchmarks/attribution_speed.md compares it with "
                   "TorchRay).")
@click.option("--ep-targets", default="true,contrast", show_default=True,
              help="Targets Extremal Perturbation explains: true, contrast or both (it costs max_iter passes each).")
@click.option("--batch", type=click.IntRange(1), default=35, show_default=True,
              help="Stimuli per compiled Extremal Perturbation call.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Folder for the contact sheet.")
@multihost
@_user_errors
def attribute_cmd(model_dir, stimuli_dir, areas, variant, max_iter, step, sigma, scale_to, jitter, preset,
                  ep_targets, batch, out, plots):
    """Explain the network on every stimulus with CAM, GradCAM and Extremal Perturbation.

    For each stimulus the network can answer (it knows both its true class
    and its foil) and two targets, the true class (`true`) and the contrast
    true-minus-foil logit (`contrast`), writes OUT/maps.npz with
    `cam_<target>`, `gradcam_<target>` (N, H, W) and `ep_<target>`
    (N, areas, H, W) at the network's input size, the EP rewards and reached
    areas, and OUT/index.csv (row, filename, true, foil) of the explained
    stimuli. CAM needs a head that is global average pooling followed by an
    affine map; with any other head it is left out, and the log and
    OUT/provenance.json say why. CAM and GradCAM
    follow pytorch-grad-cam's conventions (ReLU, min-max, bilinear upsampling);
    EP is TorchRay's algorithm and defaults, with step and sigma scaled to the
    image size. PLOTS gets attribution_sheet.png: overlays of every method on
    the first stimuli of each class.

    Params (section `attribute`): areas, variant, max_iter, step, sigma,
    scale_to, jitter, preset, ep_targets, batch.

    Each image's maps do not depend on the devices or processes it ran on:
    one or several processes give the same maps.npz bytes.
    """
    params, features, head, spec = saved.load_network(model_dir)
    try:
        area_list = tuple(float(a) for a in str(areas).split(","))
    except ValueError:
        raise InputError("--areas", None, f"{areas!r} is not a comma-separated list of numbers") from None
    ep_for = [t.strip() for t in str(ep_targets).split(",") if t.strip()]
    if not set(ep_for) <= {"true", "contrast"}:
        raise InputError("--ep-targets", None, f"{ep_targets!r}: choose from true, contrast")
    all_trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
    size, channels = interface.input_hw(spec), spec["channels"]
    parts = answers.groups(spec, all_trials["true"], all_trials["foil"])
    explained = np.sort(np.concatenate([rows for _, rows, _, _ in parts])) if parts else np.zeros(0, int)
    if not len(explained):
        raise InputError(model_dir, "labels", "the network knows none of the stimuli's (true, foil) pairs",
                         "check its label map")
    trials = all_trials.iloc[explained].reset_index(drop=True)
    position = {r: i for i, r in enumerate(explained)}

    def load(rows):
        """The stimuli ``rows`` (of `trials`) as the network's input; each process loads only its own."""
        return images.to_model_input(images.read_stimuli(stimuli_dir, trials["filename"].iloc[rows], channels),
                                     size, channels)

    true, foil = trials["true"].to_numpy(), trials["foil"].to_numpy()
    n = len(trials)
    mesh = devices.data_mesh(None)
    parts = [(k, np.array([position[r] for r in rows_k]), t_k, f_k) for k, rows_k, t_k, f_k in parts]
    with tqdm(total=n, desc="attribution", unit="img", disable=None, leave=False) as bar:
        result, cam_note, images_read = stimuli.explain_stimuli(
            (params, features, head, spec), load, n, parts, areas=area_list, variant=variant, max_iter=max_iter,
            step=step, sigma=sigma, jitter=jitter, scale_to=scale_to, preset=preset, ep_targets=ep_for,
            batch=batch, mesh=mesh, progress=bar.update)
    params_used = dict(areas=list(area_list), variant=variant, max_iter=max_iter, step=step, sigma=sigma,
                       scale_to=scale_to, jitter=jitter, preset=preset, ep_targets=ep_for, batch=batch)
    notes = {"cam_left_out": cam_note, "stimuli_left_out": int(len(all_trials) - n),
             "devices": mesh.size, "images_read_per_process": distributed.per_process(images_read)}
    if not distributed.is_writer():
        return
    with files.atomic_path(out, directory=True) as tmp:
        files.save_npz(tmp / "maps.npz", areas=np.array(area_list), **result)
        files.write_csv(tmp / "index.csv", trials.assign(row=np.arange(n))[["row", "filename", "true", "foil"]])
        files.write_json(tmp / "provenance.json", stamp(params_used, **notes))
    if plots:
        methods = [(k, t) for k, t in (("cam_true", "CAM"), ("gradcam_true", "GradCAM"),
                                        ("gradcam_contrast", "GradCAM contrast")) if k in result]
        methods += [(f"ep_{t}", f"EP {area_list[0]:g} {t}") for t in ep_for]
        tiles, labels = [], []
        for c in range(len(NAMES)):
            row = int(np.flatnonzero(true == c)[0]) if (true == c).any() else None
            if row is None:
                continue
            image = load([row])[0]
            face = np.round(image[..., 0] * 255).astype(np.uint8) if channels == 1 else \
                np.round(image * 255).astype(np.uint8)
            tiles.append(np.repeat(face[..., None], 3, -1) if face.ndim == 2 else face)
            labels.append(f"{NAMES[c]} vs {NAMES[foil[row]]}")
            for key, title in methods:
                m = result[key][row]
                tiles.append(figures.overlay(face, m[0] if m.ndim == 3 else m))
                labels.append(title)
        big = [np.kron(t, np.ones((2, 2, 1), np.uint8)) for t in tiles]
        with files.atomic_path(Path(plots) / "attribution_sheet.png") as tmp:
            files.save_png(tmp, figures.grid(big, labels, cols=len(methods) + 1))
    click.echo(f"explained {n} stimuli with {'GradCAM' if cam_note else 'CAM, GradCAM'} and EP (areas "
               f"{', '.join(map(str, area_list))})" + (f"; {len(all_trials) - n} left out (classes the network does "
                                                        "not know)" if n < len(all_trials) else "")
               + (f"; CAM left out: {cam_note}" if cam_note else ""))

