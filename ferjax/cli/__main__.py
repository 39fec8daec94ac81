"""``python -m ferjax.cli``: the ``ferjax`` command line, as ``python -m ferjax`` (the multi-process tests start
their processes this way)."""

from ferjax.cli import main

main(prog_name="ferjax")
