"""The browser experiment: the reference 2AFC reveal-by-click task, served to people.

``ferjax experiment serve`` runs a Starlette app under uvicorn. Participants
open ``/p/<token>``: instructions, a practice block, then sessions of trials
with breaks. Each trial shows the face at 256x256 in grayscale, box-blurred
with a 70x70 kernel; every click uncovers a disk of radius 15 px of the
original (cumulatively) and two buttons show the true label and the foil.

Modules: ``design`` (stimuli, trial list, schedules, images), ``db`` (SQLite
store: every event committed before it is acknowledged), ``app`` (routes and
request validation), ``export`` (reference layout + tidy tables),
``loadcheck`` (50 concurrent simulated participants). The ``ferjax
experiment`` command group is :mod:`ferjax.cli.experiment`.
"""
