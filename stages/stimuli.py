"""DVC stage `stimuli`: work/prepared/ + work/split/ + params section `stimuli` -> work/stimuli/."""

from ferjax.params import run_stage

run_stage("stimuli", dataset="work/prepared", splits="work/split", out="work/stimuli")
