"""``python -m ferjax.experiment``: the ``ferjax experiment`` command group."""

from ferjax.experiment.cli import experiment

if __name__ == "__main__":
    experiment(prog_name="ferjax experiment")
