"""DVC stage `sanity`: work/model, work/stimuli, work/attribution + params section `sanity` -> metrics/sanity.json."""

from ferjax.params import run_stage

run_stage("sanity", model="work/model", stimuli="work/stimuli", attribution="work/attribution",
          metrics="metrics/sanity.json")
