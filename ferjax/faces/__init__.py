"""Faces: the images people and networks see.

* :mod:`~ferjax.faces.labels`: AffectNet's eight classes;
* :mod:`~ferjax.faces.expressions` and :mod:`~ferjax.faces.render`: the default study's synthetic faces,
  built from facial action units, with the ground truth of where each unit shows;
* :mod:`~ferjax.faces.datasets` and :mod:`~ferjax.faces.formats`: real datasets in their on-disk formats;
* :mod:`~ferjax.faces.selection`: train / val / test / stimulus roles and each stimulus's foil;
* :mod:`~ferjax.faces.images`: stimuli read, resized and converted to a network's input;
* :mod:`~ferjax.faces.display`: what a participant sees (grayscale, box blur, uncovered disks).

May import: plumbing.
"""
