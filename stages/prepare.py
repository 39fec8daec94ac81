"""DVC stage `prepare`: params section `prepare` -> work/prepared/, metrics/prepare.json."""

from ferjax.cli.stage import run_stage

run_stage("prepare", out="work/prepared", metrics="metrics/prepare.json")
