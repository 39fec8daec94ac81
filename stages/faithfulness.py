"""DVC stage `faithfulness`: work/network, work/stimuli, work/attribution, work/human + params section
`faithfulness` -> work/faithfulness/, metrics/faithfulness.json, plots/faithfulness_curves.csv."""

from ferjax.cli.stage import run_stage

run_stage("faithfulness", network="work/network", stimuli="work/stimuli", attribution="work/attribution",
          human="work/human", out="work/faithfulness", metrics="metrics/faithfulness.json", plots="plots")
