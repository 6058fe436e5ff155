"""Roll batchops out to an AWS Organization: central stack, member StackSet, OAM sinks, Grafana.

    python deploy.py --org-unit ou-abcd-12345678 --regions us-east-1,eu-west-1 [--dry-run] [--yes]
    python deploy.py status
    python deploy.py destroy
    python deploy.py --org-unit ou-demo --local [--jobs N] [--keep-running]   # all of it on an AWS emulator

Runs with the standard AWS environment (AWS_PROFILE / --profile, AWS_ENDPOINT_URL for an emulator)
from the management account or a StackSets delegated administrator. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm

from batchops.bootstrap import Settings
from batchops.grafana import GrafanaError
from batchops.local.emulator_server import LocalRunError
from batchops.local.organization import LocalSettings, run_local
from batchops.rollout.clients import Clients, WriteRefused
from batchops.rollout.deploy import deploy
from batchops.rollout.destroy import destroy
from batchops.rollout.errors import RolloutError
from batchops.rollout.grafana_workspace import GrafanaProvisioningError
from batchops.rollout.preflight import PreflightError
from batchops.rollout.settings import CentralCapacity, OperationPreferences, RolloutSettings
from batchops.rollout.status import status
from batchops.waiting import DurationError, parse_duration
from batchops.waiting_alerts import AlarmThresholds


def _regions(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _common(suppress: bool) -> argparse.ArgumentParser:
    """Options every command takes; a subcommand's copy leaves unset options alone (set before or after it)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add("--org-unit", action="append", default=default([]), metavar="OU", help="target OU id (repeatable)")
    add("--regions", type=_regions, default=default(()), help="member regions, comma-separated")
    add("--home-region", default=default(None), help="region of the central stack (default: the first of --regions)")
    add("--profile", default=default(None), help="AWS profile (default: the standard AWS environment)")
    add("--call-as", choices=("SELF", "DELEGATED_ADMIN"), default=default(None), help="default: from the caller")
    add("--prefix", default=default("batchops"), help="name prefix of everything deployed (batchops)")
    add("--central-account", default=default(None), help="account of the central stack (default: the caller's)")
    add("--central-role-name", default=default("OrganizationAccountAccessRole"), help="role assumed there")
    add("--yes", action="store_true", default=default(False), help="answer yes to every question (CI)")
    add("--dry-run", action="store_true", default=default(False), help="show what would change; write nothing")
    add("--no-oam", dest="oam", action="store_false", default=default(True), help="no CloudWatch OAM sinks and links")
    add("--no-grafana", dest="grafana", action="store_false", default=default(True), help="no Managed Grafana")
    add("--poll-seconds", type=float, default=default(5.0), help=argparse.SUPPRESS)
    return common


def parser() -> argparse.ArgumentParser:
    """The command line."""
    common = _common(suppress=False)
    sub_common = _common(suppress=True)

    main = argparse.ArgumentParser(prog="python deploy.py", description=__doc__.splitlines()[0], parents=[common])
    main.add_argument("--include-management-account", action="store_true", help="also deploy the member stack there")
    main.add_argument("--max-concurrent-percentage", type=int, default=OperationPreferences.max_concurrent_percentage)
    main.add_argument(
        "--failure-tolerance-percentage", type=int, default=OperationPreferences.failure_tolerance_percentage
    )
    main.add_argument(
        "--grafana-admin-group", action="append", default=[], metavar="NAME", help="Identity Center group"
    )
    main.add_argument(
        "--grafana-viewer-group", action="append", default=[], metavar="NAME", help="Identity Center group"
    )
    main.add_argument("--identity-center-region", help="region of IAM Identity Center (default: --home-region)")
    main.add_argument("--artifact", type=Path, help="a built batchops-lambda.zip (default: build it)")
    main.add_argument(
        "--artifact-bucket", help="S3 bucket for the artifact (default: <prefix>-artifacts-<acct>-<region>)"
    )
    main.add_argument(
        "--central-parameter", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
        help="a parameter of central-account/template.yaml (repeatable), e.g. AlarmTopic=arn:...",
    )  # fmt: skip
    capacity = main.add_argument_group("capacity of the central DynamoDB tables (docs/deploy.md, DynamoDB capacity)")
    capacity.add_argument(
        "--capacity-mode", choices=("on-demand", "provisioned"), default=CentralCapacity.mode,
        help="bill the hot tables per request, or provision units auto scaling keeps near --target-utilization"
        " (a table may switch once per 24 h; default on-demand)",
    )  # fmt: skip
    for kind in ("read", "write"):
        for bound, side in (("min", "above"), ("max", "below")):
            default = getattr(CentralCapacity, f"{bound}_{kind}_units")
            capacity.add_argument(
                f"--{bound}-{kind}-units", type=int, metavar="N",
                help=f"provisioned only: the {kind} units auto scaling keeps each table and index at or {side}"
                f" (default {default})",
            )  # fmt: skip
    capacity.add_argument(
        "--target-utilization", type=int, metavar="PERCENT",
        help=f"provisioned only: the share of the units auto scaling aims to use (default"
        f" {CentralCapacity.target_utilization_percent})",
    )  # fmt: skip
    waiting = main.add_argument_group("alarms on waiting jobs (CloudWatch, in the central account's home region)")
    waiting.add_argument(
        "--alarm-topic", metavar="ARN",
        help="SNS topic they notify (default: the AlarmTopic central parameter, else <prefix>-alarms, made here)",
    )  # fmt: skip
    waiting.add_argument(
        "--alarm-oldest-wait", type=_duration, default=AlarmThresholds.oldest_wait_seconds, metavar="DURATION",
        help="alarm when a job of a queue has waited longer than this (default 30m; 90s, 2h, 1d)",
    )  # fmt: skip
    waiting.add_argument(
        "--alarm-jobs-waiting", type=int, default=AlarmThresholds.jobs_waiting, metavar="N",
        help=f"alarm when more than N jobs wait in one queue (default {AlarmThresholds.jobs_waiting})",
    )  # fmt: skip
    waiting.add_argument(
        "--alarm-minutes", type=int, default=AlarmThresholds.minutes, metavar="M",
        help=f"for this many minutes in a row (default {AlarmThresholds.minutes})",
    )  # fmt: skip
    waiting.add_argument("--no-alarms", dest="alarms", action="store_false", help="no alarms on waiting jobs")
    local = main.add_argument_group("the local Organization (an AWS emulator on this machine)")
    local.add_argument("--local", action="store_true", help="deploy to an emulated Organization and run a workload")
    local.add_argument(
        "--jobs", type=int, default=LocalSettings.jobs,
        help="simulated jobs submitted in all, across the accounts and regions, as `batchops simulate --jobs`"
        f" (default {LocalSettings.jobs}); an array job is one, and the summary counts its children too",
    )  # fmt: skip
    local.add_argument("--seed", type=int, default=LocalSettings.seed, help="seed of the simulated workload")
    local.add_argument("--keep-running", action="store_true", help="leave the emulator up until Ctrl-C")
    local.add_argument("--out", type=Path, default=LocalSettings.out, help="EMF, dashboards, cached artifact")
    local.add_argument("--grafana-url", help="push the dashboards to this Grafana")
    local.add_argument("--token", default=Settings.from_environment().grafana_token, help="its service account token")
    commands = main.add_subparsers(dest="command")
    commands.add_parser("status", parents=[sub_common], help="every account of the OUs x region, drift, missing")
    commands.add_parser("destroy", parents=[sub_common], help="remove everything deploy created (asks first)")
    return main


_BOUNDS = {
    "min_read_units": "--min-read-units",
    "max_read_units": "--max-read-units",
    "min_write_units": "--min-write-units",
    "max_write_units": "--max-write-units",
    "target_utilization_percent": "--target-utilization",
}


def capacity_from(args: argparse.Namespace) -> CentralCapacity:
    """The capacity mode and its bounds; a bound given without provisioned mode is a mistake, said at once."""
    given = {
        field: value
        for field, option in _BOUNDS.items()
        if (value := getattr(args, option[2:].replace("-", "_"), None)) is not None
    }
    mode = getattr(args, "capacity_mode", CentralCapacity.mode)
    if given and mode != "provisioned":
        options = ", ".join(_BOUNDS[f] for f in given)
        raise ValueError(f"{options}: only with --capacity-mode provisioned")
    return CentralCapacity(mode, **given)


def settings_from(args: argparse.Namespace, default_region: str | None = None) -> RolloutSettings:
    """Typed settings from the parsed command line."""
    home = args.home_region or (args.regions[0] if args.regions else None) or default_region
    if not home:
        raise RolloutError("no --home-region (nor --regions, nor a default region in the AWS environment)")
    return RolloutSettings(
        org_units=tuple(args.org_unit),
        regions=tuple(args.regions),
        home_region=home,
        prefix=args.prefix,
        call_as=args.call_as,
        central_account=args.central_account,
        include_management_account=getattr(args, "include_management_account", False),
        preferences=OperationPreferences(
            getattr(args, "max_concurrent_percentage", OperationPreferences.max_concurrent_percentage),
            getattr(args, "failure_tolerance_percentage", OperationPreferences.failure_tolerance_percentage),
        ),
        dry_run=args.dry_run,
        assume_yes=args.yes,
        artifact=getattr(args, "artifact", None),
        artifact_bucket=getattr(args, "artifact_bucket", None),
        central_parameters=dict(getattr(args, "central_parameter", [])),
        capacity=capacity_from(args),
        oam=args.oam,
        grafana=args.grafana,
        alarms=getattr(args, "alarms", True),
        alarm_topic=getattr(args, "alarm_topic", None),
        alarm_thresholds=AlarmThresholds(
            getattr(args, "alarm_oldest_wait", AlarmThresholds.oldest_wait_seconds),
            getattr(args, "alarm_jobs_waiting", AlarmThresholds.jobs_waiting),
            getattr(args, "alarm_minutes", AlarmThresholds.minutes),
        ),
        grafana_admin_groups=tuple(getattr(args, "grafana_admin_group", [])),
        grafana_viewer_groups=tuple(getattr(args, "grafana_viewer_group", [])),
        identity_center_region=getattr(args, "identity_center_region", None),
        profile=args.profile,
        poll_seconds=args.poll_seconds,
    )


def local_settings_from(args: argparse.Namespace) -> LocalSettings:
    """Settings of a --local run."""
    return LocalSettings(
        org_unit=args.org_unit[0] if args.org_unit else LocalSettings.org_unit,
        regions=tuple(args.regions) or LocalSettings.regions,
        jobs=args.jobs,
        seed=args.seed,
        prefix=args.prefix,
        out=args.out,
        artifact=args.artifact,
        keep_running=args.keep_running,
        grafana_url=args.grafana_url,
        grafana_token=args.token,
    )


def _ask(console: Console) -> Callable[[str], bool]:
    def ask(question: str) -> bool:
        if not sys.stdin.isatty():
            console.print(f"{question} [no terminal to answer: pass --yes]")
            return False
        return bool(Confirm.ask(question, console=console))

    return ask


def main(
    argv: Sequence[str] | None = None, *, session: boto3.Session | None = None, console: Console | None = None
) -> int:
    """Parse, build the clients, run one command; 0 ok, 1 failed, 2 preflight or usage problem."""
    args = parser().parse_args(argv)
    out = console or Console(file=sys.stdout)  # bound now: --local redirects stdout to capture EMF
    try:
        if getattr(args, "local", False) and args.command is None:
            run_local(local_settings_from(args), out)
            return 0
        session = session or boto3.Session(profile_name=args.profile)
        settings = settings_from(args, session.region_name)
        clients = Clients(session, read_only=settings.dry_run, role_name=args.central_role_name)
        ask = _ask(out)
        if args.command == "status":
            return status(settings, clients, out).exit_code
        if args.command == "destroy":
            return destroy(settings, clients, out, ask).exit_code
        with tempfile.TemporaryDirectory(prefix="batchops-deploy-") as workdir:
            return deploy(settings, clients, out, ask, workdir=Path(workdir)).exit_code
    except PreflightError as error:
        out.print("[red]preflight found problems:[/]")
        for problem in error.problems:
            out.print(f"  - {escape(str(problem))}", soft_wrap=True)
        return 2
    except (RolloutError, GrafanaProvisioningError, LocalRunError, GrafanaError, ValueError) as error:
        out.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        return 1
    except WriteRefused as error:
        out.print(f"[red]bug:[/] {escape(str(error))}")
        return 1
    except (ClientError, BotoCoreError) as error:
        out.print(f"[red]AWS error:[/] {escape(str(error))}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        if getattr(args, "local", False):
            out.print("[yellow]interrupted:[/] the emulator and the projector are stopped (their state is gone)")
        else:
            out.print(
                "[yellow]interrupted:[/] a change set or StackSet operation already started goes on in AWS;"
                " `python deploy.py status` shows where it is",
                soft_wrap=True,
            )
        return 130


if __name__ == "__main__":
    sys.exit(main())
