"""DVC stage `train`: work/prepared, work/split, work/stimuli, the click logs + params section `train`
-> work/model/, metrics/train.json, plots/confusion.png, plots/model_pairs.csv."""

from ferjax.params import run_stage, section

run_stage("train", dataset="work/prepared", splits="work/split", stimuli="work/stimuli",
          logs=section("human")["logs"], out="work/model", checkpoints="work/checkpoints",
          metrics="metrics/train.json", plots="plots")
