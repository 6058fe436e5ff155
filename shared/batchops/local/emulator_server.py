"""The AWS emulator of the local Organization: a moto server on 127.0.0.1 in a child process, and the environment
that points boto3 at it (fake credentials, the emulator's endpoint)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchops.local import emulator as emulator_patches
from batchops.local.emulator import patch_moto

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class LocalRunError(RuntimeError):
    """The local Organization could not be set up or run."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# What `make demo` installs (pyproject.toml's `local` extra): moto's server needs Flask and Flask-CORS besides moto.
EMULATOR_MODULES = ("moto", "flask", "flask_cors")
EMULATOR_REQUIREMENT = "moto[server]>=5.2.5,<6"


class EmulatorMissing(LocalRunError):
    """What the AWS emulator needs is not installed."""


def shown_path(path: Path) -> str:
    """A path as a user would type it here: relative to the working directory when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def install_command() -> str:
    """The command that installs the emulator into the Python running this."""
    python = shown_path(Path(sys.executable))
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "deploy.py").is_file():
        here = shown_path(root)
        return f"{python} -m pip install -e '{'.' if here == '.' else here}[local]'"
    return f"{python} -m pip install '{EMULATOR_REQUIREMENT}'"


def _missing_emulator(module: str, why: str) -> EmulatorMissing:
    return EmulatorMissing(
        f"the local Organization needs the AWS emulator {EMULATOR_REQUIREMENT} ({why}): install it with "
        f"`make demo` or `{install_command()}`"
    )


def require_emulator() -> None:
    """Fail at once, in one line, when the emulator's packages are not installed (before anything starts)."""
    for module in EMULATOR_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise _missing_emulator(module, f"no module named {module!r}")


def _serve(port: int, report: Any, stop: Any, verify: bool) -> None:
    """The emulator's process: a moto server with the patches until `stop` is set (Ctrl-C is the parent's). It
    sends ("ready",) on `report` once it serves, or ("missing", module, message) when moto cannot be imported."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # moto warns about every resource type its CloudFormation skips (alarms, Glue, Athena, ...), in this process:
    # the parent's filters do not reach it. The rollout does not depend on them (see batchops.local.emulator).
    warnings.filterwarnings("ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning)
    logging.getLogger("moto").setLevel(logging.ERROR)  # "No Moto CloudFormation support for AWS::..."
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        report.send(("missing", error.name or "moto", str(error)))
        return
    emulator_patches.VERIFY_FAST_PATHS = verify  # the tests' setting, in this process too
    patch_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    report.send(("ready",))
    stop.wait()
    server.stop()


EMULATOR_START_SECONDS = 120


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port) with the emulator patches; yields its URL, stops on exit.

    It runs in its own process: moto's request handling and the handlers' boto3 calls are both Python, and in one
    process they would take turns on one core; apart, the emulator and this process each have one of two cores.
    A process that ends before it serves is reported at once, not after the wait.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    reports, report = context.Pipe(duplex=False)
    stop = context.Event()
    port = _free_port()
    verify = emulator_patches.VERIFY_FAST_PATHS
    process = context.Process(target=_serve, args=(port, report, stop, verify), name="batchops-emulator", daemon=True)
    process.start()
    report.close()  # the child's end: only the child holds it now, so its exit ends the pipe
    try:
        message: tuple[Any, ...] | None = None
        if wait([reports, process.sentinel], timeout=EMULATOR_START_SECONDS):
            with contextlib.suppress(EOFError):
                message = reports.recv() if reports.poll() else None
            if message is None:
                process.join(5)
                raise LocalRunError(
                    f"the AWS emulator's process (moto server) ended with exit code {process.exitcode} before it "
                    "served (its error is above)"
                )
            if message[0] == "missing":
                raise _missing_emulator(message[1], message[2])
        else:
            raise LocalRunError(
                f"the AWS emulator (moto server) did not start within {EMULATOR_START_SECONDS // 60} minutes"
            )
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        reports.close()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)


@contextlib.contextmanager
def aws_environment(endpoint: str, region: str) -> Iterator[None]:
    """This process's AWS environment pointed at the emulator with fake credentials; restored on exit."""
    wanted = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": region}
    dropped = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    saved = {key: os.environ.get(key) for key in (*wanted, *dropped)}
    os.environ.update(wanted)
    for key in dropped:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


__all__ = ["FAKE_CREDENTIALS", "EmulatorMissing", "LocalRunError", "aws_environment", "emulator", "require_emulator"]
