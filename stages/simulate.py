"""DVC stage `simulate`: work/stimuli/ + params section `simulate` -> work/logs/, metrics/simulate.json."""

from ferjax.cli.stage import run_stage

run_stage("simulate", stimuli="work/stimuli", out="work/logs", metrics="metrics/simulate.json")
