"""ferjax: how people and deep networks see facial expressions.

A JAX reimplementation and extension of Park & Wallraven (2021), "Comparing
Facial Expression Recognition in Humans and Machines: Using CAM, GradCAM, and
Extremal Perturbation" (ACPR 2021, arXiv 2110.04481).

Main path: ``dvc.yaml`` -> ``stages/<stage>.py`` (reads its params section) ->
the ``ferjax <stage>`` subcommand in ``ferjax.commands`` (file I/O) -> the
library modules, named after what they hold: ``render`` (synthetic faces),
``datasets`` (real dataset formats), ``data`` (splits, trial lists),
``participants`` (simulated observers), ``human`` (click logs and maps),
``display`` (what a participant saw), ``model`` and ``train`` (ferjax's
networks), ``network`` (any network split at a layer), ``importers`` (Keras,
PyTorch, exported networks), ``attribution`` and ``perturbation`` (CAM,
GradCAM, Extremal Perturbation), ``conv`` and ``rewrite`` (fast convolution
gradients, for any network), ``sharding`` (image batches split over the
devices), ``distributed`` (several processes or hosts), ``compare`` (map
metrics), ``sanity`` (pointing game, model randomisation), ``agreement``
(trial-level error consistency), ``multiverse`` (robustness to the analysis
choices), ``ranking`` and ``stats`` (intervals and tests), ``study`` (people
vs network) and ``report`` (HTML). ``experiment`` runs the task in the
browser.
"""

__version__ = "0.1.0"
