"""DVC stage `split`: work/prepared/ + params section `split` -> work/split/, metrics/split.json."""

from ferjax.cli.stage import run_stage

run_stage("split", dataset="work/prepared", out="work/split", metrics="metrics/split.json")
