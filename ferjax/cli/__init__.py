"""The ``ferjax`` command line: one subcommand per pipeline stage.

Each subcommand reads explicit input paths, calls the library, and writes its
outputs atomically (a failed run leaves no partial output). DVC runs them
through ``stages/*.py``, which fill the options from ``params.yaml``; you can
run them by hand with your own paths. Bad input prints one line naming the
file and the row or field, and exits with status 2.
"""

from __future__ import annotations

import importlib

import click

#: Each subcommand: its module in ferjax.cli, the command object in it, and its one-line help. The module is
#: imported only when the command runs, so a stage loads only the code it uses (and `ferjax --help` none).
COMMANDS = {
    "synth": ("synth", "synth", "Render the synthetic face pool that stands in for AffectNet."),
    "prepare": ("prepare", "prepare", "Read a face dataset into one array file."),
    "split": ("split", "split", "Assign each image a role: train, val, test or stimulus."),
    "stimuli": ("stimuli", "stimuli", "Write the stimulus set and its 2AFC trial list."),
    "simulate": ("simulate", "simulate", "Run simulated participants through the reveal-and-choose task."),
    "human": ("human", "human_cmd",
              "Rasterize click logs into human attention maps and score people's 2AFC accuracy."),
    "train": ("train", "train_cmd", "Train the expression network."),
    "network": ("network", "network_cmd",
                "Choose the network the study explains, and score it on the people's 2AFC trials."),
    "attribute": ("attribute", "attribute_cmd",
                  "Explain the network on every stimulus with CAM, GradCAM and Extremal Perturbation."),
    "sanity": ("sanity", "sanity_cmd",
               "Check that the explanations explain the network, before comparing them with people."),
    "faithfulness": ("faithfulness", "faithfulness_cmd",
                     "Judge each map by what the network does when its pixels go: deletion, insertion and ROAD."),
    "compare": ("compare", "compare_cmd",
                "Compare the network's explanations and accuracy with people's, and say how robust the answer is."),
    "launch": ("launch", "launch", "Run COMMAND as N processes of one JAX job on this machine."),
    "experiment": ("experiment", "experiment",
                   "Run the reveal-by-click 2AFC experiment in the browser and export its logs."),
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (``COMMANDS``)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"ferjax.cli.{module}"), attribute)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ferjax")
@click.option("--cpu-devices", type=click.IntRange(1), default=None, envvar="FERJAX_CPU_DEVICES",
              show_envvar=True,
              help="Split the CPU into N XLA devices, so that training, CAM, GradCAM and Extremal "
                   "Perturbation run their batch as N parallel shards. Default: one per core (training: the "
                   "most that divide its batch); 1 opts out. No effect on GPUs. "
                   "Training results depend on N; attribution results do not.")
def main(cpu_devices):
    """Compare how people and deep networks see facial expressions.

    ferjax reproduces Park & Wallraven (2021): people uncover a blurred face by
    clicking and choose between two labels; a network is explained with CAM,
    GradCAM and Extremal Perturbation; the maps and percent correct are compared.

    \b
    Pipeline (dvc.yaml runs these in order; `dvc repro` runs them all):
      synth     render the embedded synthetic study's face pool (not a stage: its
                output is the raw data that data.dvc tracks)
      prepare   read a face dataset (reference layout, AffectNet, FER2013, RAF-DB, folders)
      split     assign train / val / test / stimulus roles
      stimuli   write the stimulus set and its 2AFC trial list
      simulate  run simulated participants and write reference-format click logs
      human     rasterize click logs into human maps; people's percent correct
      train     train the expression network
      network   choose the network to study (the trained one, or one imported from
                Keras or PyTorch); score it on the people's trials
      attribute explain it with CAM, GradCAM and Extremal Perturbation
      sanity    check that the explanations explain the network
      faithfulness  deletion, insertion and ROAD: is each map faithful to the network?
      compare   compare maps, percent correct and errors; test the answer's
                robustness to the analysis choices; write the report

    experiment runs the reveal-and-choose task in the browser; launch runs a stage
    as several processes of one JAX job (train and attribute scale over hosts).

    Run `ferjax COMMAND --help` for what each reads, writes and which params apply.
    """
    if cpu_devices:
        from ferjax.plumbing import devices

        try:
            devices.set_cpu_devices(cpu_devices)
        except RuntimeError as err:  # the backend was already started
            raise click.UsageError(f"--cpu-devices must be set before JAX starts: {err}") from None

