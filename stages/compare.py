"""DVC stage `compare`: human maps, attributions, the model's answers, the sanity checks + params section
`compare` -> work/compare/, report/index.html, metrics/compare.json, plots/."""

from ferjax.cli.stage import run_stage, section

run_stage("compare", human="work/human", human_metrics="metrics/human.json", attribution="work/attribution",
          network="work/network", logs=section("human")["logs"], stimuli="work/stimuli", sanity="metrics/sanity.json",
          out="work/compare", report="report", metrics="metrics/compare.json", plots="plots")
