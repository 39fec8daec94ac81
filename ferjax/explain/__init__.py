"""Explanations of a network's decision, and checks that they explain it.

* :mod:`~ferjax.explain.activation`: CAM (Zhou et al. 2016) and GradCAM (Selvaraju et al. 2017);
  :mod:`~ferjax.explain.heads`: the checks that a head is what CAM needs;
* :mod:`~ferjax.explain.perturbation` and :mod:`~ferjax.explain.masks`: Extremal Perturbation
  (Fong, Patrick & Vedaldi 2019), as TorchRay computes it;
* :mod:`~ferjax.explain.stimuli`: every stimulus of a study explained by the network that answers it;
* :mod:`~ferjax.explain.sanity` and :mod:`~ferjax.explain.checks`: pointing game and model randomisation;
* :mod:`~ferjax.explain.faithfulness` and :mod:`~ferjax.explain.road`: deletion and insertion (Petsiuk et al.
  2018) and ROAD (Rong et al. 2022): is a map faithful to the network?

May import: plumbing, faces, analysis, people, networks.
"""
