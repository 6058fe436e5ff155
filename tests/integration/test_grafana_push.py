"""`batchops dashboards push` against a local stand-in for the Grafana HTTP API."""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from batchops.dashboards import DashboardSettings, render_dashboards
from batchops.grafana import GrafanaClient, GrafanaError, ProvisioningSettings, push
from batchops.waiting_alerts import AlarmThresholds

TOKEN = "glsa_test_token"


@dataclass
class Request:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class FakeGrafana:
    """The few Grafana 10.4 API endpoints batchops uses, in memory, recording every request."""

    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    alert_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    plugins: set[str] = field(default_factory=lambda: {"grafana-athena-datasource", "cloudwatch"})
    requests: list[Request] = field(default_factory=list)
    token: str = TOKEN
    read_only: bool = False
    unrouted: set[str] = field(default_factory=set)
    next_id: int = 1

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def handle(
        self, method: str, raw_path: str, authorization: str, body: Any, disable_provenance: bool = False
    ) -> tuple[int, Any]:
        self.requests.append(Request(method, raw_path, authorization, body))
        parsed = urllib.parse.urlsplit(raw_path)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/") if p]
        if parts == ["api", "health"]:
            return 200, {"database": "ok", "version": "10.4.1"}
        if parts[:1] != ["api"] or set(parts[1:2]) & self.unrouted:
            return 404, {"message": "Not found"}
        if authorization != f"Bearer {self.token}":
            return 401, {"message": "invalid API key"}
        if method != "GET" and self.read_only:
            return 403, {"message": "You'll need additional permissions to perform this action."}
        route = parts[1:]
        if route[:1] == ["plugins"] and route[2:] == ["settings"]:
            return (
                (200, {"id": route[1], "enabled": True})
                if route[1] in self.plugins
                else (404, {"message": "Plugin not found"})
            )
        if route[:1] == ["datasources"]:
            return self._datasources(method, route[1:], body)
        if route[:1] == ["folders"]:
            return self._folders(method, route[1:], body)
        if route[:1] == ["dashboards"]:
            return self._dashboards(method, route[1:], body)
        if route[:3] == ["v1", "provisioning", "alert-rules"]:
            return self._alert_rules(method, route[3:], body, "" if disable_provenance else "api")
        return 404, {"message": "Not found"}

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _datasources(self, method: str, route: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and route[:1] == ["uid"] and route[1] in self.datasources:
            return 200, self.datasources[route[1]]
        if method == "GET" and route[:1] == ["name"]:
            found = [ds for ds in self.datasources.values() if ds["name"] == route[1]]
            return (200, found[0]) if found else (404, {"message": "Data source not found"})
        if method == "POST" and not route:
            if any(ds["name"] == body["name"] for ds in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            stored = {
                "id": self._id(),
                "orgId": 1,
                "url": "",
                "basicAuth": False,
                "isDefault": False,
                "readOnly": False,
                "version": 1,
                "secureJsonFields": {},
                **body,
            }
            self.datasources[body["uid"]] = stored
            return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource added"}
        if method == "PUT" and route[:1] == ["uid"] and route[1] in self.datasources:
            current = self.datasources[route[1]]
            assert "id" not in body and "secureJsonFields" not in body, "read-only fields sent back"
            current.update(body)
            current["version"] += 1
            return 200, {"datasource": current, "message": "Datasource updated"}
        return 404, {"message": "Data source not found"}

    def _folders(self, method: str, route: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and not route:
            return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in self.folders.values()]
        if method == "GET" and route and route[0] in self.folders:
            return 200, self.folders[route[0]]
        if method == "POST" and not route:
            folder = {"id": self._id(), "uid": body["uid"], "title": body["title"], "version": 1}
            self.folders[body["uid"]] = folder
            return 200, folder
        if method == "PUT" and route and route[0] in self.folders:
            self.folders[route[0]].update(title=body["title"], version=self.folders[route[0]]["version"] + 1)
            return 200, self.folders[route[0]]
        return 404, {"message": "folder not found"}

    def _dashboards(self, method: str, route: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and route[:1] == ["uid"] and route[1] in self.dashboards:
            return 200, copy.deepcopy(self.dashboards[route[1]])
        if method == "POST" and route == ["db"]:
            dashboard = body["dashboard"]
            existing = self.dashboards.get(dashboard["uid"])
            if existing and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            if body["folderUid"] not in self.folders:
                return 400, {"message": "folder not found"}
            version = existing["dashboard"]["version"] + 1 if existing else 1
            stored = {**copy.deepcopy(dashboard), "id": self._id(), "version": version}
            self.dashboards[dashboard["uid"]] = {"dashboard": stored, "meta": {"folderUid": body["folderUid"]}}
            return 200, {"uid": dashboard["uid"], "version": version, "status": "success"}
        return 404, {"message": "Dashboard not found"}

    def _alert_rules(self, method: str, route: list[str], body: Any, provenance: str) -> tuple[int, Any]:
        """Grafana 10.4's /api/v1/provisioning/alert-rules: GET, POST and PUT of one rule, validated as Grafana
        validates a ProvisionedAlertRule; the stored rule gets an id, its provenance, `for` in Prometheus' form."""
        if method == "GET" and len(route) == 1:
            found = self.alert_rules.get(route[0])
            return (200, copy.deepcopy(found)) if found else (404, {"message": "rule not found"})
        if (method == "POST" and not route) or (method == "PUT" and len(route) == 1):
            uid = body.get("uid") if method == "POST" else route[0]
            existing = self.alert_rules.get(uid or "")
            if method == "PUT" and existing is None:
                return 404, {"message": "rule not found"}
            if method == "POST" and existing is not None:
                return 409, {"message": f"conflict: a rule with uid {uid} already exists"}
            if existing is not None and existing["provenance"] != provenance:
                return 400, {"message": f"cannot change provenance from '{existing['provenance']}' to '{provenance}'"}
            problem = self._rule_problem(body)
            if problem:
                return 400, {"message": f"invalid alert rule: {problem}"}
            stored = {
                **copy.deepcopy(body),
                "uid": uid,
                "id": self._id(),
                "provenance": provenance,
                "isPaused": False,
                "updated": "2026-12-04T20:00:00Z",
                "for": _prometheus(body["for"]),
            }
            self.alert_rules[str(uid)] = stored
            return (201 if method == "POST" else 200), stored
        return 404, {"message": "Not found"}

    def _rule_problem(self, rule: dict[str, Any]) -> str | None:
        for key in ("title", "folderUID", "ruleGroup", "condition", "data", "for", "noDataState", "execErrState"):
            if not rule.get(key):
                return f"{key} is required"
        if "orgID" not in rule:
            return "orgID is required"
        if len(rule["title"]) > 190 or len(rule["ruleGroup"]) > 190:
            return "title and rule group take at most 190 characters"
        if rule.get("uid") and not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", rule["uid"]):
            return f"uid {rule['uid']!r} is not 1 to 40 letters, digits, - or _"
        if rule["folderUID"] not in self.folders:
            return f"folder {rule['folderUID']} does not exist"
        if rule["noDataState"] not in ("Alerting", "NoData", "OK") or rule["execErrState"] not in (
            "Alerting",
            "Error",
            "OK",
        ):
            return "unknown NoData or Error state option"
        if not re.fullmatch(r"(\d+[smhd])+", rule["for"]):
            return f"cannot parse for {rule['for']!r}"
        refs = [query.get("refId") for query in rule["data"]]
        if rule["condition"] not in refs:
            return f"condition {rule['condition']} does not exist in data {refs}"
        for query in rule["data"]:
            window = query.get("relativeTimeRange") or {}
            if not query.get("datasourceUid") or "model" not in query or window.get("from", 0) < window.get("to", 0):
                return f"query {query.get('refId')}: datasourceUid, model and a relativeTimeRange are required"
            if query["datasourceUid"] != "__expr__" and query["datasourceUid"] not in self.datasources:
                return f"data source {query['datasourceUid']} does not exist"
        return None


def _prometheus(duration: str) -> str:
    """A duration as Grafana stores and gives it back (Prometheus' model.Duration): 300s -> 5m, 90m -> 1h30m."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration))
    text = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        text += f"{count}{unit}" if count else ""
    return text or "0s"


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            provenance_off = self.headers.get("X-Disable-Provenance") is not None
            status, payload = fake.handle(
                self.command, self.path, self.headers.get("Authorization", ""), body, provenance_off
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


SETTINGS = DashboardSettings()
TARGET = ProvisioningSettings(
    home_region="eu-west-1", athena_workgroup="batchops", athena_output_location="s3://results/athena/"
)


def run_push(url: str, target: ProvisioningSettings = TARGET, token: str = TOKEN) -> dict[tuple[str, str], str]:
    changes = push(GrafanaClient(url, token), render_dashboards(SETTINGS), SETTINGS, target)
    return {(c.kind, c.name): c.outcome for c in changes}


def test_first_push_creates_everything(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    outcomes = run_push(url)
    assert set(outcomes.values()) == {"created"}
    assert len(outcomes) == 2 + 1 + 5 + 2
    assert all(r.authorization == f"Bearer {TOKEN}" for r in fake.requests if r.path != "/api/health")

    cloudwatch = fake.datasources["batchops-cloudwatch"]
    assert cloudwatch["type"] == "cloudwatch" and cloudwatch["access"] == "proxy"
    assert cloudwatch["jsonData"] == {"authType": "default", "defaultRegion": "eu-west-1"}
    athena = fake.datasources["batchops-athena"]
    assert athena["type"] == "grafana-athena-datasource"
    assert athena["jsonData"] == {
        "authType": "default",
        "defaultRegion": "eu-west-1",
        "catalog": "AwsDataCatalog",
        "database": "batchops",
        "workgroup": "batchops",
        "outputLocation": "s3://results/athena/",
    }
    assert fake.folders["batch"]["title"] == "Batch"
    posts = [r.body for r in fake.writes() if r.path == "/api/dashboards/db"]
    assert {p["dashboard"]["uid"] for p in posts} == set(render_dashboards(SETTINGS))
    assert all(p["folderUid"] == "batch" and p["overwrite"] is True and "id" not in p["dashboard"] for p in posts)


def test_second_push_writes_nothing(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    run_push(url)
    fake.requests.clear()
    outcomes = run_push(url)
    assert set(outcomes.values()) == {"unchanged"}
    assert fake.writes() == [], "an idempotent push only reads"


def test_changed_settings_update_only_what_changed(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    run_push(url)
    fake.datasources["batchops-athena"]["jsonData"]["someUiOption"] = True  # set by a user in the UI
    fake.dashboards["batchops-jobs"]["dashboard"]["title"] = "edited by hand"
    fake.requests.clear()
    moved = ProvisioningSettings(
        home_region="eu-west-1", athena_workgroup="other", athena_output_location="s3://results/athena/"
    )
    outcomes = run_push(url, moved)
    assert outcomes[("datasource", "BatchOps Athena")] == "updated"
    assert outcomes[("datasource", "BatchOps CloudWatch")] == "unchanged"
    assert outcomes[("dashboard", "Batch · Jobs")] == "updated"
    assert outcomes[("dashboard", "Batch · Capacity")] == "unchanged"
    athena = fake.datasources["batchops-athena"]
    assert athena["jsonData"]["workgroup"] == "other" and athena["jsonData"]["someUiOption"] is True
    assert fake.dashboards["batchops-jobs"]["dashboard"]["title"] == "Batch · Jobs"
    assert [r.method for r in fake.writes()] == ["PUT", "POST"]


def test_an_existing_batch_folder_is_adopted(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.folders["abc123"] = {"id": 99, "uid": "abc123", "title": "Batch", "version": 3}
    outcomes = run_push(url)
    assert outcomes[("folder", "Batch")] == "unchanged"
    assert {d["meta"]["folderUid"] for d in fake.dashboards.values()} == {"abc123"}
    assert set(fake.folders) == {"abc123"}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda fake: setattr(fake, "token", "another"), r"rejected the token \(401 Unauthorized\).*--token"),
        (lambda fake: setattr(fake, "read_only", True), r"403 Forbidden.*Admin role"),
        (
            lambda fake: fake.plugins.discard("grafana-athena-datasource"),
            r"grafana-cli plugins install grafana-athena-datasource",
        ),
        (
            lambda fake: fake.datasources.update(x={"uid": "x", "name": "BatchOps CloudWatch", "type": "cloudwatch"}),
            r"named 'BatchOps CloudWatch' already exists with uid 'x'",
        ),
        (
            lambda fake: fake.unrouted.add("folders"),
            r"POST /api/folders answered 404 Not Found \(Grafana said: Not found\).*Grafana root URL",
        ),
    ],
    ids=["401", "403", "plugin-missing", "name-taken", "404"],
)
def test_errors_say_what_to_do(grafana: tuple[FakeGrafana, str], setup: Any, expected: str) -> None:
    fake, url = grafana
    setup(fake)
    with pytest.raises(GrafanaError, match=expected):
        run_push(url)


def test_a_wrong_url_is_reported_as_such(grafana: tuple[FakeGrafana, str]) -> None:
    _, url = grafana
    with pytest.raises(GrafanaError, match="not point at a Grafana root URL"):
        run_push(url + "/grafana/d/some-dashboard")


def test_unreachable_grafana() -> None:
    with pytest.raises(GrafanaError, match="cannot reach Grafana"):
        run_push("http://127.0.0.1:9")


def test_cli_push_reports_each_change(grafana: tuple[FakeGrafana, str], capsys: pytest.CaptureFixture[str]) -> None:
    from batchops.cli import main

    _, url = grafana
    args = ["dashboards", "push", "--grafana-url", url, "--token", TOKEN, "--home-region", "eu-west-1"]
    assert main(args) == 0
    assert capsys.readouterr().out.count("created") == 10
    assert main(args) == 0
    assert capsys.readouterr().out.count("unchanged") == 10
    assert main([*args[:4], "--token", "wrong", *args[6:]]) == 1
    assert "401" in capsys.readouterr().err


def test_deploy_push_takes_the_central_stack_outputs(grafana: tuple[FakeGrafana, str]) -> None:
    """deploy.py's push: database, workgroup, results and DLQ from the stack outputs, the workspace role."""
    from batchops.rollout.grafana_workspace import push_dashboards

    fake, url = grafana
    outputs = {
        "AthenaCatalog": "AwsDataCatalog",
        "AthenaDatabaseName": "acme_batch",
        "AthenaWorkGroupName": "acme-batch",
        "AthenaResultsLocation": "s3://acme-batch-projections/athena-results/",
        "IngestDeadLetterQueueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/acme-batch-ingest-dlq",
    }
    changes = push_dashboards(url, TOKEN, outputs, "eu-west-1")
    assert len(changes) == 10 and all(change.endswith(": created") for change in changes)
    assert all(r.authorization == f"Bearer {TOKEN}" for r in fake.requests)
    assert fake.datasources["batchops-cloudwatch"]["jsonData"] == {
        "authType": "ec2_iam_role",
        "defaultRegion": "eu-west-1",
    }
    assert fake.datasources["batchops-athena"]["jsonData"] == {
        "authType": "ec2_iam_role",
        "defaultRegion": "eu-west-1",
        "catalog": "AwsDataCatalog",
        "database": "acme_batch",
        "workgroup": "acme-batch",
        "outputLocation": "s3://acme-batch-projections/athena-results/",
    }
    overview = json.dumps(fake.dashboards["batchops-overview"]["dashboard"])
    assert '\\"acme_batch\\".\\"jobs\\"' in overview and '"QueueName": "acme-batch-ingest-dlq"' in overview
    fake.requests.clear()
    assert push_dashboards(url, TOKEN, outputs, "eu-west-1") == []
    assert fake.writes() == []


# -- alert rules --------------------------------------------------------------------------------------------------


def test_the_alert_rules_watch_what_the_cloudwatch_alarms_watch_and_stay_provisioned(
    grafana: tuple[FakeGrafana, str],
) -> None:
    from batchops.rollout.alarms import alarm_requests

    fake, url = grafana
    run_push(url)
    rules = fake.alert_rules
    assert set(rules) == {"batchops-job-waiting-too-long", "batchops-jobs-piling-up"}
    alarms = {r["AlarmName"].removeprefix("bo-"): r for r in alarm_requests("bo", "arn:t", AlarmThresholds())}
    for uid, rule in rules.items():
        alarm = alarms[uid.removeprefix("batchops-")]
        query, reduce, threshold = (q["model"] for q in rule["data"])
        assert query["sqlExpression"] == alarm["Metrics"][0]["Expression"], "the alarm's query, per queue"
        assert query["datasource"] == {"type": "cloudwatch", "uid": "batchops-cloudwatch"}
        assert (reduce["type"], reduce["expression"], threshold["type"], threshold["expression"]) == (
            "reduce", "A", "threshold", "B"
        )  # fmt: skip
        assert threshold["conditions"][0]["evaluator"] == {"type": "gt", "params": [alarm["Threshold"]]}
        assert rule["condition"] == "C" and rule["for"] == "5m" == f"{alarm['EvaluationPeriods']}m"
        assert rule["noDataState"] == "OK", "no job waiting anywhere is no data: fine, as the alarms treat it"
        assert rule["folderUID"] == "batch" and rule["ruleGroup"] == "batchops-waiting"
        assert rule["provenance"] == "api", "sent without X-Disable-Provenance: read-only in the UI"
        assert "{{ $labels.JobQueue }}" in rule["annotations"]["summary"]
    posts = [r for r in fake.writes() if r.path == "/api/v1/provisioning/alert-rules"]
    assert len(posts) == 2


def test_new_thresholds_update_only_the_rules_they_change(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    run_push(url)
    fake.requests.clear()
    longer = ProvisioningSettings(
        home_region="eu-west-1",
        athena_workgroup="batchops",
        athena_output_location="s3://results/athena/",
        alert_thresholds=AlarmThresholds(oldest_wait_seconds=7200),
    )
    outcomes = run_push(url, longer)
    assert outcomes[("alert rule", "Batch job waiting too long")] == "updated"
    assert outcomes[("alert rule", "Batch jobs piling up in a queue")] == "unchanged"
    assert [(r.method, r.path) for r in fake.writes()] == [
        ("PUT", "/api/v1/provisioning/alert-rules/batchops-job-waiting-too-long")
    ]
    [_, _, threshold] = fake.alert_rules["batchops-job-waiting-too-long"]["data"]
    assert threshold["model"]["conditions"][0]["evaluator"]["params"] == [7200]

    ninety = ProvisioningSettings(home_region="eu-west-1", alert_thresholds=AlarmThresholds(minutes=90))
    run_push(url, ninety)
    assert fake.alert_rules["batchops-jobs-piling-up"]["for"] == "1h30m"
    fake.requests.clear()
    assert set(run_push(url, ninety).values()) == {"unchanged"}, "Grafana's form of 90 minutes compares equal"
    assert fake.writes() == []


def test_a_rule_changed_in_grafana_is_put_back_and_a_rule_grafana_refuses_says_why(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    run_push(url)
    fake.alert_rules["batchops-jobs-piling-up"]["noDataState"] = "Alerting"  # changed through the API
    assert run_push(url)[("alert rule", "Batch jobs piling up in a queue")] == "updated"
    assert fake.alert_rules["batchops-jobs-piling-up"]["noDataState"] == "OK"

    client = GrafanaClient(url, TOKEN)
    rule = dict(fake.alert_rules["batchops-jobs-piling-up"], uid="another", title="")
    with pytest.raises(GrafanaError, match=r"400 to POST /api/v1/provisioning/alert-rules.*title is required"):
        client.send("POST", "/api/v1/provisioning/alert-rules", rule)
    del fake.folders["batch"]
    fake.alert_rules.clear()
    with pytest.raises(GrafanaError, match="folder batch does not exist"):
        from batchops.grafana import _push_alert_rule, alert_rules

        _push_alert_rule(client, alert_rules(SETTINGS, TARGET, "batch")[0])


def test_cli_push_takes_the_alert_thresholds_or_pushes_no_rules(
    grafana: tuple[FakeGrafana, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from batchops.cli import main

    fake, url = grafana
    args = ["dashboards", "push", "--grafana-url", url, "--token", TOKEN, "--home-region", "eu-west-1"]
    assert main([*args, "--no-alert-rules"]) == 0
    assert "alert rule" not in capsys.readouterr().out and fake.alert_rules == {}
    assert main([*args, "--alert-oldest-wait", "2h", "--alert-jobs-waiting", "40", "--alert-minutes", "10"]) == 0
    thresholds = {
        uid: (rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"], rule["for"])
        for uid, rule in fake.alert_rules.items()
    }
    assert thresholds == {"batchops-job-waiting-too-long": ([7200], "10m"), "batchops-jobs-piling-up": ([40], "10m")}
    assert main([*args, "--alert-minutes", "0"]) == 2
    assert "--alert-minutes must be 1..180" in capsys.readouterr().err
