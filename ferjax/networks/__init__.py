"""Networks: what is explained, as pure functions, whoever built it.

* :mod:`~ferjax.networks.interface`: a network split at a layer, ``features(params, x)`` and a head;
* :mod:`~ferjax.networks.cnn` and :mod:`~ferjax.networks.train`: ferjax's own networks and their training;
* :mod:`~ferjax.networks.importers`: networks trained elsewhere (Keras, PyTorch, ferjax's exported format);
* :mod:`~ferjax.networks.saved`: networks saved by the pipeline's stages;
* :mod:`~ferjax.networks.answers`: a network's answers in the 2AFC task;
* :mod:`~ferjax.networks.conv` and :mod:`~ferjax.networks.rewrite`: fast convolution gradients, for any network.

May import: plumbing, faces, analysis, people.
"""
