"""People: participants' clicks and choices, and the maps and accuracy made from them.

* :mod:`~ferjax.people.clicklogs`: click logs in the reference program's layout and ferjax's tidy tables;
* :mod:`~ferjax.people.clickmaps`: clicks rasterized into reveal masks and human attention maps;
* :mod:`~ferjax.people.exclusions`: the exclusion rules: participants and trials the analysis leaves out;
* :mod:`~ferjax.people.accuracy`: people's percent correct;
* :mod:`~ferjax.people.reliability`: split-half reliability of the maps, the noise ceiling;
* :mod:`~ferjax.people.simulation`: the default study's simulated participants;
* :mod:`~ferjax.people.experiment`: the task in the browser, for real participants.

May import: plumbing, faces, analysis.
"""
