"""DVC stage `train`: work/prepared, work/split + params section `train` -> work/model/, metrics/train.json,
plots/confusion.png."""

from ferjax.cli.stage import run_stage

run_stage("train", dataset="work/prepared", splits="work/split", out="work/model", checkpoints="work/checkpoints",
          metrics="metrics/train.json", plots="plots")
