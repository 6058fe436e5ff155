"""The Lambda artifact: batchops and its pinned runtime dependencies, zipped byte-for-byte reproducibly.

The same sources and the same pinned versions give the same zip, hence the same sha256: the deploy can
name the S3 key after the hash and CloudFormation updates the functions only when something changed.

    python -m batchops.rollout.lambda_package --out dist/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = "batchops"
ARTIFACT_NAME = "batchops-lambda.zip"
REQUIREMENTS_NAME = "batchops-lambda-requirements.txt"
DEFAULT_PYTHON = "3.12"
DEFAULT_PLATFORM = "manylinux2014_aarch64"
# The Lambda Python runtimes ship the AWS SDK; bundling it would add ~25 MB zipped for nothing the
# handlers need beyond the runtime's version (they use plain DynamoDB, SQS and CloudWatch Logs APIs).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
MAX_UNZIPPED_BYTES = 50 * 1024 * 1024
# The earliest time a zip entry can carry (DOS date): fixed, so the build date never reaches the bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16
_UNIX = 3
# Never shipped: bytecode (the runtime compiles on import), console scripts (their shebang is this
# machine's interpreter), and pip's RECORD (it lists those scripts with machine-specific hashes).
_SKIPPED_SUFFIXES = (".pyc", ".pyo")

NOT_IN_LAMBDA = (
    "rollout",
    "simulation",
    "local",
    "grafana.py",
    "cli_dashboards.py",
)
"""Parts of the package (paths below it) that run on an operator's machine, never in Lambda: the rollout, the local
Organization and its emulator, the simulator, the Grafana provisioning. No Lambda entry point imports them (a test
follows the entry points' imports)."""


class ArtifactError(RuntimeError):
    """The artifact cannot be built as asked (missing dependency, too large, pip failed)."""


@dataclass(frozen=True)
class ArtifactReport:
    """What the deploy needs to know about a built artifact."""

    path: str
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    python: str
    platform: str
    requirements: tuple[str, ...]


def target_environment(python: str, platform: str) -> dict[str, str]:
    """PEP 508 marker values of the Lambda interpreter (Linux, CPython `python`, the platform's machine)."""
    machine = "aarch64" if platform.endswith("aarch64") else "x86_64" if platform.endswith("x86_64") else platform
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{python}.0",
        "python_version": python,
        "sys_platform": "linux",
    }


def pinned_requirements(
    root: str = PACKAGE,
    *,
    python: str = DEFAULT_PYTHON,
    platform: str = DEFAULT_PLATFORM,
    provided: Iterable[str] = RUNTIME_PROVIDED,
) -> list[str]:
    """`name==version` of every runtime dependency of `root` (transitively) as installed here, for the target.

    Markers are evaluated for the Lambda interpreter, not this one; extras are followed only where a
    requirement asks for them; `provided` packages (and what only they need) are left out.
    """
    environment = target_environment(python, platform)
    left_out = {canonicalize_name(name) for name in provided}
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while pending:
        name, extras = pending.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError as error:
            raise ArtifactError(f"{name} is a runtime dependency but is not installed here") from error
        if canonicalize_name(name) != canonicalize_name(root):
            pins[canonicalize_name(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            wanted = extras or frozenset({""})
            if requirement.marker and not any(requirement.marker.evaluate({**environment, "extra": e}) for e in wanted):
                continue
            if canonicalize_name(requirement.name) in left_out:
                continue
            installed = _installed_version(requirement.name)
            if installed is not None and not requirement.specifier.contains(installed, prereleases=True):
                raise ArtifactError(f"{dist.metadata['Name']} needs {requirement}, but {installed} is installed")
            pending.append((requirement.name, frozenset(requirement.extras)))
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _installed_version(name: str) -> str | None:
    try:
        return distribution(name).version
    except PackageNotFoundError:
        return None


def install_requirements(
    requirements: Sequence[str], target: Path, *, python: str = DEFAULT_PYTHON, platform: str = DEFAULT_PLATFORM
) -> None:
    """Install exactly these pinned wheels for the target interpreter and platform into `target` (no resolver)."""
    if not requirements:
        return
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "requirements.txt"
        listing.write_text("".join(f"{r}\n" for r in requirements))
        command = [
            sys.executable, "-m", "pip", "install",
            "--target", str(target),
            "--platform", platform,
            "--implementation", "cp",
            "--python-version", python,
            "--only-binary=:all:",
            # The list is already the whole closure, pinned: pip must not resolve anything else.
            "--no-deps",
            "--no-compile",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--requirement", str(listing),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ArtifactError(f"pip could not install the Lambda dependencies:\n{result.stderr or result.stdout}")


def package_source() -> Path:
    """The directory of the batchops package this interpreter imports."""
    import batchops

    return Path(batchops.__file__).resolve().parent


def stage_lambda_tree(
    staging: Path,
    *,
    python: str = DEFAULT_PYTHON,
    platform: str = DEFAULT_PLATFORM,
    source: Path | None = None,
    requirements: Sequence[str] | None = None,
) -> list[str]:
    """Lay out the Lambda's /var/task in `staging`: the pinned dependencies, then the batchops package.

    Returns the requirements installed.
    """
    pins = list(requirements) if requirements is not None else pinned_requirements(python=python, platform=platform)
    staging.mkdir(parents=True, exist_ok=True)
    install_requirements(pins, staging, python=python, platform=platform)
    destination = staging / PACKAGE
    if destination.exists():
        shutil.rmtree(destination)
    root = source or package_source()
    skipped = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).relative_to(root)
        operator_only = {n for n in names if (here / n).as_posix() in NOT_IN_LAMBDA}
        return set(skipped(folder, names)) | operator_only

    shutil.copytree(root, destination, ignore=ignore)
    return pins


def _entries(tree: Path) -> list[tuple[str, Path]]:
    """Files to ship, as (archive name, path), sorted by archive name."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(tree):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not (here == tree and d == "bin")]
        for name in files:
            if name.endswith(_SKIPPED_SUFFIXES) or (name == "RECORD" and here.name.endswith(".dist-info")):
                continue
            path = here / name
            found.append((path.relative_to(tree).as_posix(), path))
    return sorted(found)


def write_deterministic_zip(tree: Path, destination: Path) -> int:
    """Zip `tree` into `destination` with sorted entries, fixed dates and modes; returns the unzipped size.

    Refuses (before writing) a tree above the 50 MB unzipped budget.
    """
    entries = _entries(tree)
    unzipped = sum(path.stat().st_size for _, path in entries)
    if unzipped > MAX_UNZIPPED_BYTES:
        raise ArtifactError(f"the Lambda tree is {unzipped / 2**20:.1f} MB unzipped, above the 50 MB budget")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = _FILE_MODE
            info.create_system = _UNIX
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    partial.replace(destination)
    return unzipped


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def report(path: Path, *, python: str, platform: str, requirements: Sequence[str]) -> ArtifactReport:
    """Hash, sizes and file count of a built artifact."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    return ArtifactReport(
        path=str(path),
        sha256=sha256_of(path),
        zipped_bytes=path.stat().st_size,
        unzipped_bytes=sum(i.file_size for i in infos),
        files=len(infos),
        python=python,
        platform=platform,
        requirements=tuple(requirements),
    )


def build_lambda_artifact(
    out_dir: Path | str,
    *,
    python: str = DEFAULT_PYTHON,
    platform: str = DEFAULT_PLATFORM,
    source: Path | None = None,
) -> Path:
    """Build `<out_dir>/batchops-lambda.zip` (and its pinned requirements list beside it); returns the zip's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pins = pinned_requirements(python=python, platform=platform)
    with tempfile.TemporaryDirectory(prefix="batchops-lambda-") as staging:
        stage_lambda_tree(Path(staging), python=python, platform=platform, source=source, requirements=pins)
        artifact = out / ARTIFACT_NAME
        write_deterministic_zip(Path(staging), artifact)
    (out / REQUIREMENTS_NAME).write_text("".join(f"{r}\n" for r in pins))
    return artifact


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m batchops.rollout.lambda_package --out DIR`: build the artifact and print its report as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m batchops.rollout.lambda_package", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="directory to write batchops-lambda.zip into")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="Lambda Python version (default %(default)s)")
    parser.add_argument("--platform", default=DEFAULT_PLATFORM, help="wheel platform (default %(default)s)")
    parser.add_argument("--source", type=Path, help="batchops package directory to ship (default: the one imported)")
    args = parser.parse_args(argv)
    try:
        path = build_lambda_artifact(args.out, python=args.python, platform=args.platform, source=args.source)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    pins = (args.out / REQUIREMENTS_NAME).read_text().split()
    print(json.dumps(asdict(report(path, python=args.python, platform=args.platform, requirements=pins)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
