"""Grafana dashboards rendered from the jinja2 templates in dashboards/."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "dashboards"
"""Where the `*.json.j2` templates live (the repository's dashboards/ folder)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DashboardSettings:
    """Names the dashboards refer to: EMF namespace, Athena tables, data source uids, queues."""

    namespace: str = "BatchOps"
    athena_database: str = "batchops"
    jobs_table: str = "jobs"
    instances_table: str = "instances"
    job_events_table: str = "job_events"
    job_attempts_table: str = "job_attempts"
    athena_uid: str = "batchops-athena"
    athena_name: str = "BatchOps Athena"
    cloudwatch_uid: str = "batchops-cloudwatch"
    cloudwatch_name: str = "BatchOps CloudWatch"
    dlq_name: str = "batchops-ingest-dlq"
    job_log_group: str = "/aws/batch/job"

    def __post_init__(self) -> None:
        for name in (
            "athena_database",
            "jobs_table",
            "instances_table",
            "job_events_table",
            "job_attempts_table",
        ):
            value = getattr(self, name)
            if not _IDENTIFIER.match(value):
                raise ValueError(f"{name}={value!r} is not a plain SQL identifier (letters, digits, _)")

    def table(self, name: str) -> str:
        """The quoted, database-qualified Athena name of a projection table."""
        return f'"{self.athena_database}"."{name}"'


@functools.cache
def _environment(templates_dir: Path) -> jinja2.Environment:
    """One environment per template folder, so compiled templates are reused (jinja reloads changed files)."""
    import jinja2  # here, not at import time: every CLI command loads this module, few render

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["fromjson"] = json.loads
    return env


def _number_panels(dashboard: dict[str, Any]) -> None:
    """Give every panel (rows' nested panels included) an id in layout order."""
    next_id = 1
    for panel in dashboard["panels"]:
        panel["id"] = next_id
        next_id += 1
        for nested in panel.get("panels", []):
            nested["id"] = next_id
            next_id += 1


def render_dashboards(settings: DashboardSettings, templates_dir: Path = TEMPLATES_DIR) -> dict[str, dict[str, Any]]:
    """Render every `*.json.j2` template into a Grafana dashboard model, keyed by dashboard uid."""
    env = _environment(templates_dir)
    tables = {
        "jobs": settings.table(settings.jobs_table),
        "instances": settings.table(settings.instances_table),
        "job_events": settings.table(settings.job_events_table),
        "job_attempts": settings.table(settings.job_attempts_table),
    }
    dashboards: dict[str, dict[str, Any]] = {}
    for path in sorted(templates_dir.glob("*.json.j2")):
        text = env.get_template(path.name).render(s=settings, tables=tables)
        try:
            dashboard: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path.name} does not render to JSON: {error}") from error
        _number_panels(dashboard)
        uid = dashboard["uid"]
        if uid in dashboards:
            raise ValueError(f"{path.name} reuses the dashboard uid {uid!r}")
        dashboards[uid] = dashboard
    if not dashboards:
        raise ValueError(f"no *.json.j2 dashboard templates in {templates_dir}")
    return dashboards


def write_dashboards(out_dir: Path, settings: DashboardSettings, templates_dir: Path = TEMPLATES_DIR) -> list[Path]:
    """Write each rendered dashboard to `out_dir/<uid>.json`; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, dashboard in render_dashboards(settings, templates_dir).items():
        path = out_dir / f"{uid}.json"
        path.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
