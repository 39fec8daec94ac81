"""Plumbing every stage shares: files, errors, provenance, devices and processes.

* :mod:`~ferjax.plumbing.files`: atomic writes (a failed run leaves no partial output), npz/JSON/CSV/PNG;
* :mod:`~ferjax.plumbing.errors`: :class:`~ferjax.plumbing.errors.InputError`, the one-line error naming
  the file and the row or field;
* :mod:`~ferjax.plumbing.provenance`: the parameters and versions stored beside every result;
* :mod:`~ferjax.plumbing.devices`: image batches split over the visible devices (``jax.sharding``);
* :mod:`~ferjax.plumbing.distributed`: several processes or hosts on ``jax.distributed``.

May import: nothing else of ferjax.
"""
