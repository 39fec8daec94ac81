"""DVC stage `compare`: human maps, attributions, the model's answers, the sanity and faithfulness checks + params
section `compare` (and the face dataset's name from `prepare`) -> work/compare/, report/index.html,
metrics/compare.json, plots/."""

from ferjax.cli.stage import run_stage, section

prepare = section("prepare")
run_stage("compare", human="work/human", human_metrics="metrics/human.json", attribution="work/attribution",
          network="work/network", logs=section("human")["logs"], stimuli="work/stimuli", sanity="metrics/sanity.json",
          faithfulness="metrics/faithfulness.json", dataset=f"{prepare['format']} faces in {prepare['root']}",
          out="work/compare", report="report", metrics="metrics/compare.json", plots="plots")
