"""DVC stage `stimuli`: work/prepared/ + work/split/ + params section `stimuli` -> work/stimuli/."""

from ferjax.cli.stage import run_stage

run_stage("stimuli", dataset="work/prepared", splits="work/split", out="work/stimuli")
