"""``python -m ferjax``: the ``ferjax`` command line (:mod:`ferjax.cli`)."""

from ferjax.cli import main

main(prog_name="ferjax")
