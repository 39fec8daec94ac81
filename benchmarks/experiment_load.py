"""Load check of the browser experiment: 50 simulated participants on 127.0.0.1.

Runs `ferjax.people.experiment.loadcheck`: every acknowledged click must be in the
export, and the median acknowledgement latency must stay under 50 ms.
"""

import sys

from ferjax.people.experiment.loadcheck import main

sys.exit(main())
