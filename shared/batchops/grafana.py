"""Provision the BatchOps data sources, folder, dashboards and alert rules into a Grafana over its HTTP API.

The alert rules (Grafana-managed, through the alerting provisioning API) fire on the conditions deploy.py's CloudWatch
alarms watch (batchops.waiting_alerts), one alert instance per account, region and queue. They are sent without
`X-Disable-Provenance`, so Grafana keeps them as provisioned: the UI shows them read-only. Their thresholds come from
the push's options, like the alarms' from deploy.py's; an edit in the UI would make the two disagree and be undone by
the next push, so Grafana says where they are changed instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchops.dashboards import DashboardSettings
from batchops.waiting_alerts import PERIOD_SECONDS, AlarmThresholds, WaitingCondition, waiting_conditions

ATHENA_PLUGIN = "grafana-athena-datasource"
CLOUDWATCH_PLUGIN = "cloudwatch"

# Fields Grafana returns about a data source that an update must not send back.
_DATASOURCE_READ_ONLY = ("id", "orgId", "typeLogoUrl", "typeName", "secureJsonFields", "readOnly", "version")


class GrafanaError(RuntimeError):
    """A Grafana API call failed; the message says what to do about it."""


@dataclass(frozen=True)
class ProvisioningSettings:
    """Where the data sources point (AWS region, Athena workgroup...) and the folder dashboards go to."""

    home_region: str
    athena_catalog: str = "AwsDataCatalog"
    athena_workgroup: str = "primary"
    athena_output_location: str = ""
    auth_type: str = "default"
    assume_role_arn: str = ""
    folder_uid: str = "batch"
    folder_title: str = "Batch"
    alert_thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)
    alert_rules: bool = True


@dataclass(frozen=True)
class Change:
    """What one push did to one Grafana object: created, updated or unchanged."""

    kind: str
    name: str
    outcome: str


class GrafanaClient:
    """A minimal JSON client for the Grafana HTTP API, authenticated with a bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise GrafanaError(f"--grafana-url {url!r} must start with http:// or https://")
        if not token:
            raise GrafanaError("no Grafana token: pass --token or set BATCHOPS_GRAFANA_TOKEN")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def get(self, path: str) -> Any:
        """GET a path; None when Grafana answers 404 (the object does not exist)."""
        return self._call("GET", path, None, missing_ok=True)

    def send(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        """POST or PUT a JSON body; any error status raises GrafanaError."""
        return self._call(method, path, body, missing_ok=False)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None, *, missing_ok: bool) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "batchops")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404 and missing_ok:
                return None
            raise self._explain(error, method, path) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GrafanaError(f"cannot reach Grafana at {self.url}: {reason}") from None
        return json.loads(raw) if raw else None

    def _explain(self, error: urllib.error.HTTPError, method: str, path: str) -> GrafanaError:
        try:
            message = str(json.loads(error.read()).get("message", ""))
        except (ValueError, AttributeError, OSError):
            message = ""
        said = f" (Grafana said: {message})" if message else ""
        if error.code == 401:
            return GrafanaError(
                f"Grafana at {self.url} rejected the token (401 Unauthorized){said}. Pass a valid service "
                "account token with --token or BATCHOPS_GRAFANA_TOKEN; in Amazon Managed Grafana create one "
                "with `aws grafana create-workspace-service-account-token` (they expire)."
            )
        if error.code == 403:
            return GrafanaError(
                f"the token may not {method} {path} (403 Forbidden){said}. Give its service account the "
                "Admin role: creating data sources and folders needs it."
            )
        if error.code == 404:
            return GrafanaError(
                f"{method} {path} answered 404 Not Found{said}. Check that --grafana-url {self.url} is the "
                "Grafana root URL (e.g. https://g-abc123.grafana-workspace.eu-west-1.amazonaws.com), "
                "without /api or a dashboard path."
            )
        return GrafanaError(f"Grafana answered {error.code} to {method} {path}{said}")


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _datasources(dashboards: DashboardSettings, settings: ProvisioningSettings) -> list[dict[str, Any]]:
    auth: dict[str, str] = {"authType": settings.auth_type, "defaultRegion": settings.home_region}
    if settings.assume_role_arn:
        auth["assumeRoleArn"] = settings.assume_role_arn
    athena = {
        **auth,
        "catalog": settings.athena_catalog,
        "database": dashboards.athena_database,
        "workgroup": settings.athena_workgroup,
    }
    if settings.athena_output_location:
        athena["outputLocation"] = settings.athena_output_location
    return [
        {
            "uid": dashboards.cloudwatch_uid,
            "name": dashboards.cloudwatch_name,
            "type": CLOUDWATCH_PLUGIN,
            "access": "proxy",
            "jsonData": auth,
        },
        {
            "uid": dashboards.athena_uid,
            "name": dashboards.athena_name,
            "type": ATHENA_PLUGIN,
            "access": "proxy",
            "jsonData": athena,
        },
    ]


def _push_datasource(client: GrafanaClient, desired: dict[str, Any]) -> Change:
    uid, name = desired["uid"], desired["name"]
    if desired["type"] == ATHENA_PLUGIN and client.get(f"/api/plugins/{ATHENA_PLUGIN}/settings") is None:
        raise GrafanaError(
            f"the Athena data source plugin ({ATHENA_PLUGIN}) is not installed in {client.url}: run "
            f"`grafana-cli plugins install {ATHENA_PLUGIN}` (Amazon Managed Grafana ships it)."
        )
    existing = client.get(f"/api/datasources/uid/{_quote(uid)}")
    if existing is None:
        same_name = client.get(f"/api/datasources/name/{_quote(name)}")
        if same_name is not None:
            option = "--athena-uid" if desired["type"] == ATHENA_PLUGIN else "--cloudwatch-uid"
            raise GrafanaError(
                f"a data source named {name!r} already exists with uid {same_name.get('uid')!r}: rename or "
                f"delete it, or pass its uid to batchops with {option}."
            )
        client.send("POST", "/api/datasources", desired)
        return Change("datasource", name, "created")
    current_json = existing.get("jsonData") or {}
    if (
        existing.get("name") == name
        and existing.get("type") == desired["type"]
        and existing.get("access") == desired["access"]
        and all(current_json.get(key) == value for key, value in desired["jsonData"].items())
    ):
        return Change("datasource", name, "unchanged")
    update = {key: value for key, value in existing.items() if key not in _DATASOURCE_READ_ONLY}
    update.update(desired)
    update["jsonData"] = {**current_json, **desired["jsonData"]}
    client.send("PUT", f"/api/datasources/uid/{_quote(uid)}", update)
    return Change("datasource", name, "updated")


def _push_folder(client: GrafanaClient, settings: ProvisioningSettings) -> tuple[str, Change]:
    """Make sure the folder exists; return its uid (an existing folder with the title is adopted)."""
    existing = client.get(f"/api/folders/{_quote(settings.folder_uid)}")
    if existing is not None:
        if existing.get("title") == settings.folder_title:
            return settings.folder_uid, Change("folder", settings.folder_title, "unchanged")
        client.send(
            "PUT",
            f"/api/folders/{_quote(settings.folder_uid)}",
            {"title": settings.folder_title, "version": existing.get("version", 0), "overwrite": True},
        )
        return settings.folder_uid, Change("folder", settings.folder_title, "updated")
    for folder in client.get("/api/folders?limit=1000") or []:
        if folder.get("title") == settings.folder_title:
            return str(folder["uid"]), Change("folder", settings.folder_title, "unchanged")
    client.send("POST", "/api/folders", {"uid": settings.folder_uid, "title": settings.folder_title})
    return settings.folder_uid, Change("folder", settings.folder_title, "created")


def _push_dashboard(client: GrafanaClient, dashboard: Mapping[str, Any], folder_uid: str) -> Change:
    uid, title = dashboard["uid"], dashboard["title"]
    existing = client.get(f"/api/dashboards/uid/{_quote(uid)}")
    if existing is not None:
        stored = existing.get("dashboard") or {}
        same_content = all(stored.get(key) == value for key, value in dashboard.items())
        if same_content and (existing.get("meta") or {}).get("folderUid") == folder_uid:
            return Change("dashboard", title, "unchanged")
    client.send(
        "POST",
        "/api/dashboards/db",
        {
            "dashboard": dict(dashboard),
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "batchops push",
        },
    )
    return Change("dashboard", title, "created" if existing is None else "updated")


RULE_GROUP = "batchops-waiting"
"""The alert rules' group in the folder (Grafana evaluates a group at its interval, 1 minute by default)."""
_RULE_UID_PREFIX = "batchops-"
_EXPRESSIONS = {"type": "__expr__", "uid": "__expr__"}


def _minutes(minutes: int) -> str:
    """A duration as Grafana gives it back (Prometheus' form: 5m, 1h, 1h30m), so that a stored rule compares equal."""
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest or not hours else "")


def _alert_rule(
    condition: WaitingCondition, dashboards: DashboardSettings, folder_uid: str, minutes: int
) -> dict[str, Any]:
    """A Grafana-managed alert rule: the Metrics Insights query on the CloudWatch data source (one series per
    queue), its last value, the threshold; no data (no job waiting anywhere) is fine."""
    datasource = {"type": CLOUDWATCH_PLUGIN, "uid": dashboards.cloudwatch_uid}
    query = {
        "refId": "A",
        "datasource": datasource,
        "queryMode": "Metrics",
        "region": "default",
        "metricQueryType": 1,  # Metrics Insights
        "metricEditorMode": 1,  # its SQL as written
        "sqlExpression": condition.query,
        "period": str(PERIOD_SECONDS),
        "intervalMs": PERIOD_SECONDS * 1000,
        "maxDataPoints": 43200,
    }
    reduce = {"refId": "B", "datasource": _EXPRESSIONS, "type": "reduce", "expression": "A", "reducer": "last",
              "settings": {"mode": "dropNN"}}  # fmt: skip
    threshold = {"refId": "C", "datasource": _EXPRESSIONS, "type": "threshold", "expression": "B",
                 "conditions": [{"evaluator": {"type": "gt", "params": [condition.threshold]}}]}  # fmt: skip
    window = {"from": 10 * PERIOD_SECONDS, "to": 0}
    return {
        "uid": _RULE_UID_PREFIX + condition.name,
        "title": condition.title,
        "folderUID": folder_uid,
        "ruleGroup": RULE_GROUP,
        "orgID": 1,
        "condition": "C",
        "data": [
            {"refId": "A", "datasourceUid": dashboards.cloudwatch_uid, "relativeTimeRange": window, "model": query},
            {"refId": "B", "datasourceUid": "__expr__", "relativeTimeRange": window, "model": reduce},
            {"refId": "C", "datasourceUid": "__expr__", "relativeTimeRange": window, "model": threshold},
        ],
        "for": _minutes(minutes),
        "noDataState": "OK",
        "execErrState": "Error",
        "labels": {"batchops": "waiting"},
        "annotations": {
            "summary": "{{ $labels.AccountId }} {{ $labels.Region }} {{ $labels.JobQueue }}: " + condition.title,
            "description": condition.description,
        },
    }


def _push_alert_rule(client: GrafanaClient, rule: Mapping[str, Any]) -> Change:
    uid, title = rule["uid"], rule["title"]
    existing = client.get(f"/api/v1/provisioning/alert-rules/{_quote(uid)}")
    if existing is None:
        client.send("POST", "/api/v1/provisioning/alert-rules", rule)
        return Change("alert rule", title, "created")
    # orgID is the token's organisation, whatever the body says
    if all(existing.get(key) == value for key, value in rule.items() if key != "orgID"):
        return Change("alert rule", title, "unchanged")
    client.send("PUT", f"/api/v1/provisioning/alert-rules/{_quote(uid)}", rule)
    return Change("alert rule", title, "updated")


def alert_rules(dashboards: DashboardSettings, settings: ProvisioningSettings, folder_uid: str) -> list[dict[str, Any]]:
    """The alert rules a push provisions into the folder."""
    thresholds = settings.alert_thresholds
    return [
        _alert_rule(condition, dashboards, folder_uid, thresholds.minutes)
        for condition in waiting_conditions(thresholds, dashboards.namespace)
    ]


def push(
    client: GrafanaClient,
    dashboards: Mapping[str, Mapping[str, Any]],
    dashboard_settings: DashboardSettings,
    settings: ProvisioningSettings,
) -> list[Change]:
    """Create or update the data sources, the folder, the dashboards and the alert rules; a second push changes
    nothing."""
    if client.get("/api/health") is None:
        raise GrafanaError(f"{client.url}/api/health answered 404: --grafana-url does not point at a Grafana root URL")
    changes = [_push_datasource(client, ds) for ds in _datasources(dashboard_settings, settings)]
    folder_uid, folder_change = _push_folder(client, settings)
    changes.append(folder_change)
    changes.extend(_push_dashboard(client, dashboard, folder_uid) for dashboard in dashboards.values())
    if settings.alert_rules:
        changes.extend(_push_alert_rule(client, rule) for rule in alert_rules(dashboard_settings, settings, folder_uid))
    return changes
