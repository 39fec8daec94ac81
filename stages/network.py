"""DVC stage `network`: the network to study (params `network.source`, `network.file`: the train stage's or an
imported one), work/stimuli, the click logs -> work/network/, metrics/network.json, plots/model_pairs.csv."""

from ferjax.cli.stage import run_stage, section

run_stage("network", stimuli="work/stimuli", logs=section("human")["logs"], out="work/network",
          metrics="metrics/network.json", plots="plots")
