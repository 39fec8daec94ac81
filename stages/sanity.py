"""DVC stage `sanity`: work/network, work/stimuli, work/attribution + params section `sanity` -> metrics/sanity.json."""

from ferjax.cli.stage import run_stage

run_stage("sanity", network="work/network", stimuli="work/stimuli", attribution="work/attribution",
          metrics="metrics/sanity.json")
