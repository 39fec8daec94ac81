"""ferjax: how people and deep networks see facial expressions.

A JAX reimplementation and extension of Park & Wallraven (2021), "Comparing
Facial Expression Recognition in Humans and Machines: Using CAM, GradCAM, and
Extremal Perturbation" (ACPR 2021, arXiv 2110.04481).

The subpackages follow the pipeline, and each imports only those before it:

    plumbing   files, errors, provenance, devices and processes
    faces      the images: synthetic faces, real datasets, stimuli, what a participant sees
    analysis   ranks and correlation, map similarity, statistics, agreement, the study, the multiverse
    people     click logs, human maps, accuracy, reliability, simulated participants, the browser experiment
    networks   the network interface, ferjax's CNNs and training, importers, 2AFC answers
    explain    CAM, GradCAM, Extremal Perturbation, sanity checks
    report     the HTML report and the figures
    cli        the `ferjax` command: one subcommand per DVC stage

Main path: ``dvc.yaml`` -> ``stages/<stage>.py`` (reads its params section)
-> ``ferjax <stage>`` in :mod:`ferjax.cli` (reads and writes files) -> one
library function. ``docs/architecture.md`` draws the packages and the data
that flows between them.
"""

__version__ = "0.1.0"

# one XLA CPU device per core unless a count was chosen or JAX has started (ferjax.plumbing.devices says why)
from ferjax.plumbing import devices as _devices  # noqa: E402

_devices.use_all_cores()
