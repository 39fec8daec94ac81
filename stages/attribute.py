"""DVC stage `attribute`: work/network + work/stimuli + params section `attribute` -> work/attribution/, plots/."""

from ferjax.cli.stage import run_stage

run_stage("attribute", network="work/network", stimuli="work/stimuli", out="work/attribution", plots="plots")
