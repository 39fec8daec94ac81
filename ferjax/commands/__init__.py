"""The `ferjax` subcommands, one module per part of the pipeline (see `ferjax.cli`)."""
