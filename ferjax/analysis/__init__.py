"""Analysis: how maps, answers and errors are compared, and how sure the answer is.

* :mod:`~ferjax.analysis.correlation`: ranks, Pearson and Spearman, the one definition used everywhere;
* :mod:`~ferjax.analysis.similarity`: map-to-map and map-to-clicks metrics (Dice, IoU, CC, Spearman,
  KL, SIM, NSS, AUC-Judd);
* :mod:`~ferjax.analysis.mapops`: normalising, smoothing and per-pair sums of maps;
* :mod:`~ferjax.analysis.stats`: intervals and tests;
* :mod:`~ferjax.analysis.differences`: simultaneous intervals of paired differences, best sets, cross-fitting;
* :mod:`~ferjax.analysis.agreement`: error consistency and performance concordance of observers;
* :mod:`~ferjax.analysis.ranking`: every candidate map scored against people's, with baselines;
* :mod:`~ferjax.analysis.study`, :mod:`~ferjax.analysis.multiverse` and
  :mod:`~ferjax.analysis.comparison`: people against the network, and the answer's robustness;
* :mod:`~ferjax.analysis.observers`: percent correct of people and the network in a binomial mixed model;
* :mod:`~ferjax.analysis.source`: what the data are (simulated or recorded participants, rendered faces);
* :mod:`~ferjax.analysis.verdict`: the answer in words.

May import: plumbing, faces.
"""
