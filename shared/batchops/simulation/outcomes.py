"""How an attempt can end: the outcome kinds and the reasons AWS gives for them."""

from __future__ import annotations

REASON_ESSENTIAL_EXITED = "Essential container in task exited"
REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"
REASON_TIMEOUT = "Job attempt duration exceeded timeout"
REASON_CANCELLED = "Cancelled by user"
REASON_ARRAY_CHILD_FAILED = "Array Child Job failed"
REASON_SPOT_CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - There is no Spot capacity available that meets the job requirements."
)
REASON_CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type "
    "[{itype}]"
)
REASON_MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet "
    "the CPU requirement of the job."
)
REASON_RESOURCE_REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
    "than that can be met by the CE(s) attached to the job queue."
)

SUCCESS = "success"
SPOT_RECLAIM = "spot_reclaim"
OOM = "oom"
EXIT_NONZERO = "exit_nonzero"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
