"""A deterministic, realistic EventBridge stream of AWS Batch and its infrastructure across many accounts.

settings (what to simulate) → accounts (compute environments, queues, job definitions from the catalog) →
workload (jobs, arrays, dependencies, retries) and attempts → fleet (instances, scaling, spot reclaims), every
event planned on the timeline and built when released by one builder per source (events/) → chaos (duplicates,
reordering, late delivery) → run (the public entry points).
"""

from batchops.simulation.events.envelope import DETAIL_TYPES
from batchops.simulation.run import simulate, simulate_with_truth
from batchops.simulation.settings import REGIONS, SECRET_VALUE, SimulationSettings
from batchops.simulation.truth import ExpectedJob

__all__ = [
    "DETAIL_TYPES",
    "REGIONS",
    "SECRET_VALUE",
    "ExpectedJob",
    "SimulationSettings",
    "simulate",
    "simulate_with_truth",
]
