"""ferjax: how people and deep networks see facial expressions.

A JAX reimplementation and extension of Park & Wallraven (2021), "Comparing
Facial Expression Recognition in Humans and Machines: Using CAM, GradCAM, and
Extremal Perturbation" (ACPR 2021, arXiv 2110.04481).

Main path: ``ferjax.cli`` (one subcommand per DVC stage) -> ``stages/*.py`` ->
the library modules named after what they hold: ``render`` (synthetic faces),
``datasets`` (real dataset formats), ``data`` (preparation, splits, trial
lists), ``participants`` (simulated observers), ``human`` (click logs).
"""

__version__ = "0.1.0"
