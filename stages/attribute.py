"""DVC stage `attribute`: work/model + work/stimuli + params section `attribute` -> work/attribution/, plots/."""

from ferjax.params import run_stage

run_stage("attribute", model="work/model", stimuli="work/stimuli", out="work/attribution", plots="plots")
