"""The browser experiment: the reference 2AFC reveal-by-click task, served to people.

``ferjax experiment serve`` runs a Starlette app under uvicorn. Participants
come through the public study link ``/s/<study>`` (a recruitment platform's
id in the URL: consent, then their own page) or a printed link
``/p/<token>``: a browser check, preloading, instructions, a practice block,
then sessions of trials with breaks and attention checks, a debriefing and
the completion redirect. Each trial shows the face at 256x256 in grayscale,
box-blurred with a 70x70 kernel; every click uncovers a disk of radius 15 px
of the original (cumulatively) and two buttons show the true label and the foil.

Modules: ``design`` (stimuli, trial list, schedules with catch trials,
images), ``texts`` (page texts, the lab's consent and debriefing pages),
``roster`` (participants: printed links, consent, completion) and ``db``
(the SQLite store: every event committed before it is acknowledged),
``web`` (settings, strict request bodies), ``app`` (the participant routes),
``recruit`` (the study link), ``admin`` (the admin view), ``vendor``
(jsPsych files from the lab's npm install), ``export`` (reference layout,
tidy tables, quality tables), ``psychds`` (a Psych-DS dataset), ``backup``
(online backup), ``loadcheck`` (concurrent simulated participants). The
``ferjax experiment`` command group is :mod:`ferjax.cli.experiment`.
"""
