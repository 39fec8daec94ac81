"""DVC stage `human`: click logs + params section `human` -> work/human/, metrics/human.json, plots/."""

from ferjax.cli.stage import run_stage

run_stage("human", stimuli="work/stimuli", out="work/human", metrics="metrics/human.json", plots="plots")
