"""What a deploy, status or destroy run did, and how the command should exit."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchops.rollout.coverage import CoverageRow


@dataclass
class RunResult:
    """What a deploy, status or destroy run did and how it should exit."""

    exit_code: int = 0
    changes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    coverage: list[CoverageRow] = field(default_factory=list)
