"""`batchops dashboards render|push`: the Grafana subcommands, registered into the main CLI."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from batchops.bootstrap import Settings
from batchops.dashboards import DashboardSettings, render_dashboards, write_dashboards
from batchops.waiting_alerts import AlarmThresholds

AUTH_TYPES = ("default", "ec2_iam_role", "keys", "credentials", "grafana_assume_role")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `dashboards render` and `dashboards push` to the CLI's subcommands."""
    parser = subparsers.add_parser("dashboards", help="render the Grafana dashboards or push them to a Grafana")
    commands = parser.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")

    render = commands.add_parser("render", help="write the dashboard JSON files")
    render.add_argument("--out", type=Path, required=True, help="directory for the <uid>.json files")
    _dashboard_options(render)
    render.set_defaults(handler=_render)

    target = commands.add_parser("push", help="create or update data sources, folder and dashboards in a Grafana")
    environment = Settings.from_environment()
    target.add_argument("--grafana-url", default=environment.grafana_url or None, help="Grafana root URL")
    target.add_argument(
        "--token",
        default=environment.grafana_token or None,
        help="service account token (default: $BATCHOPS_GRAFANA_TOKEN)",
    )
    target.add_argument(
        "--home-region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="region of the central account's CloudWatch and Athena (default: $AWS_REGION)",
    )
    target.add_argument("--athena-catalog", default="AwsDataCatalog")
    target.add_argument(
        "--athena-workgroup",
        default="batchops",
        help="the central stack's workgroup (default: batchops, its name with the default Prefix; it enforces"
        " the results location)",
    )
    target.add_argument("--athena-output-location", default="", help="s3:// URL (default: the workgroup's)")
    target.add_argument(
        "--auth-type",
        choices=AUTH_TYPES,
        default="default",
        help="AWS credentials of the data sources; ec2_iam_role = the Managed Grafana workspace role",
    )
    target.add_argument("--assume-role-arn", default="", help="role the data sources assume")
    target.add_argument("--folder-title", default="Batch")
    alerts = target.add_argument_group("alert rules on waiting jobs (the conditions of deploy.py's alarms)")
    alerts.add_argument(
        "--alert-oldest-wait", type=_duration, default=AlarmThresholds.oldest_wait_seconds, metavar="DURATION",
        help="fire when a job of a queue has waited longer than this (default 30m; 90s, 2h, 1d)",
    )  # fmt: skip
    alerts.add_argument(
        "--alert-jobs-waiting", type=int, default=AlarmThresholds.jobs_waiting, metavar="N",
        help=f"fire when more than N jobs wait in one queue (default {AlarmThresholds.jobs_waiting})",
    )  # fmt: skip
    alerts.add_argument(
        "--alert-minutes", type=int, default=AlarmThresholds.minutes, metavar="M",
        help=f"for this many minutes (default {AlarmThresholds.minutes})",
    )  # fmt: skip
    alerts.add_argument("--no-alert-rules", dest="alert_rules", action="store_false", help="push no alert rules")
    _dashboard_options(target)
    target.set_defaults(handler=_push)


def _duration(text: str) -> float:
    from batchops.waiting import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _dashboard_options(parser: argparse.ArgumentParser) -> None:
    defaults = DashboardSettings()
    parser.add_argument("--namespace", default=Settings.from_environment().namespace, help="EMF namespace")
    parser.add_argument("--athena-database", default=defaults.athena_database)
    parser.add_argument("--athena-uid", default=defaults.athena_uid, help="uid of the Athena data source")
    parser.add_argument("--cloudwatch-uid", default=defaults.cloudwatch_uid, help="uid of the CloudWatch data source")
    parser.add_argument("--dlq-name", default=defaults.dlq_name, help="SQS dead-letter queue of the aggregator")


def _dashboard_settings(args: argparse.Namespace) -> DashboardSettings:
    return DashboardSettings(
        namespace=args.namespace,
        athena_database=args.athena_database,
        athena_uid=args.athena_uid,
        cloudwatch_uid=args.cloudwatch_uid,
        dlq_name=args.dlq_name,
    )


def _render(args: argparse.Namespace) -> int:
    for path in write_dashboards(args.out, _dashboard_settings(args)):
        print(path)
    return 0


def _push(args: argparse.Namespace) -> int:
    from batchops.grafana import GrafanaClient, GrafanaError, ProvisioningSettings, push  # only this command needs it

    missing = [
        flag for flag, value in (("--grafana-url", args.grafana_url), ("--home-region", args.home_region)) if not value
    ]
    if missing:
        print(f"batchops: error: dashboards push needs {' and '.join(missing)}", file=sys.stderr)
        return 2
    dashboards = _dashboard_settings(args)
    try:
        thresholds = AlarmThresholds(args.alert_oldest_wait, args.alert_jobs_waiting, args.alert_minutes)
    except ValueError as error:
        print(f"batchops: error: {str(error).replace('--alarm-', '--alert-')}", file=sys.stderr)
        return 2
    settings = ProvisioningSettings(
        home_region=args.home_region,
        athena_catalog=args.athena_catalog,
        athena_workgroup=args.athena_workgroup,
        athena_output_location=args.athena_output_location,
        auth_type=args.auth_type,
        assume_role_arn=args.assume_role_arn,
        folder_title=args.folder_title,
        alert_thresholds=thresholds,
        alert_rules=args.alert_rules,
    )
    try:
        client = GrafanaClient(args.grafana_url, args.token or "")
        changes = push(client, render_dashboards(dashboards), dashboards, settings)
    except GrafanaError as error:
        print(f"batchops: error: {error}", file=sys.stderr)
        return 1
    for change in changes:
        print(f"{change.outcome:<10} {change.kind:<11} {change.name}")
    return 0
