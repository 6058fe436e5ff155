"""`batchops dashboards push` against a local stand-in for the Grafana HTTP API."""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from batchops.dashboards import DashboardSettings, render_dashboards
from batchops.grafana import GrafanaClient, GrafanaError, ProvisioningSettings, push

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
    plugins: set[str] = field(default_factory=lambda: {"grafana-athena-datasource", "cloudwatch"})
    requests: list[Request] = field(default_factory=list)
    token: str = TOKEN
    read_only: bool = False
    unrouted: set[str] = field(default_factory=set)
    next_id: int = 1

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def handle(self, method: str, raw_path: str, authorization: str, body: Any) -> tuple[int, Any]:
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


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(self.command, self.path, self.headers.get("Authorization", ""), body)
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
    assert len(outcomes) == 2 + 1 + 4
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
    assert capsys.readouterr().out.count("created") == 7
    assert main(args) == 0
    assert capsys.readouterr().out.count("unchanged") == 7
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
    assert len(changes) == 7 and all(change.endswith(": created") for change in changes)
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
