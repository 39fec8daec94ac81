"""The ``ferjax`` command line: one subcommand per pipeline stage.

Each subcommand reads explicit input paths, calls the library, and writes its
outputs atomically (a failed run leaves no partial output). DVC runs them
through ``stages/*.py``, which fill the options from ``params.yaml``; you can
run them by hand with your own paths. Bad input prints one line naming the
file and the row or field, and exits with status 2.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ferjax")
@click.option("--cpu-devices", type=click.IntRange(1), default=None, envvar="FERJAX_CPU_DEVICES",
              show_envvar=True,
              help="Split the CPU into N XLA devices, so that training, CAM, GradCAM and Extremal "
                   "Perturbation run their batch as N parallel shards (use the number of cores). "
                   "No effect on GPUs. "
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
      compare   compare maps, percent correct and errors; test the answer's
                robustness to the analysis choices; write the report

    experiment runs the reveal-and-choose task in the browser; launch runs a stage
    as several processes of one JAX job (train and attribute scale over hosts).

    Run `ferjax COMMAND --help` for what each reads, writes and which params apply.
    """
    if cpu_devices:
        import jax

        try:
            jax.config.update("jax_num_cpu_devices", cpu_devices)
        except RuntimeError as err:  # the backend was already started
            raise click.UsageError(f"--cpu-devices must be set before JAX starts: {err}") from None


def _register():
    # The subcommands live in ferjax.commands, one module per part of the pipeline;
    # the experiment's web stack loads only when one of its subcommands runs.
    from ferjax.commands import checks, cluster, comparison, data, explain, network, people, training
    from ferjax.experiment.cli import experiment

    for command in (data.synth, data.prepare, data.split, data.stimuli, people.simulate, people.human_cmd,
                    training.train_cmd, network.network_cmd, explain.attribute_cmd, checks.sanity_cmd,
                    comparison.compare_cmd, cluster.launch, experiment):
        main.add_command(command)


_register()


if __name__ == "__main__":
    main()
