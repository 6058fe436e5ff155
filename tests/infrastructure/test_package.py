"""The Lambda artifact: reproducible bytes, the right platform, within the size budget."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from batchops.rollout.lambda_package import (
    ARTIFACT_NAME,
    MAX_UNZIPPED_BYTES,
    NOT_IN_LAMBDA,
    REQUIREMENTS_NAME,
    ZIP_DATE,
    ArtifactError,
    build_lambda_artifact,
    package_source,
    pinned_requirements,
    sha256_of,
    target_environment,
    write_deterministic_zip,
)

EM_AARCH64 = 183  # ELF e_machine of 64-bit ARM


# --- without the network -----------------------------------------------------------------------------


def test_pins_are_the_installed_runtime_closure_without_the_sdk() -> None:
    from importlib.metadata import version

    pins = dict(p.split("==") for p in pinned_requirements())
    assert pins["pydantic-core"] == version("pydantic-core")
    assert pins["eventsourcing"] == "9.5.6"
    assert {"pydantic", "aws-lambda-powertools", "orjson", "jinja2", "rich"} <= set(pins)
    # The runtime provides the SDK; what only the SDK needs goes with it.
    assert not {"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"} & set(pins)
    # Development tools never reach the Lambda.
    assert not {"moto", "pytest", "cfn-lint", "mypy", "ruff", "hypothesis"} & set(pins)
    assert pinned_requirements(provided=()) != pinned_requirements()  # keeping the SDK is a choice away


def test_markers_are_evaluated_for_the_lambda_interpreter() -> None:
    environment = target_environment("3.12", "manylinux2014_aarch64")
    assert (environment["python_version"], environment["platform_machine"]) == ("3.12", "aarch64")
    assert environment["sys_platform"] == "linux"


def _tree(root: Path) -> Path:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "pkg" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\x00")
    (root / "pkg" / "data.bin").write_bytes(bytes(range(256)) * 64)
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_text("#!/some/build/machine/python\n")
    (root / "lib-1.0.dist-info").mkdir()
    (root / "lib-1.0.dist-info" / "RECORD").write_text("../../bin/tool,sha256=machine-specific,30\n")
    (root / "lib-1.0.dist-info" / "METADATA").write_text("Name: lib\nVersion: 1.0\n")
    (root / "a_module.py").write_text("pass\n")
    return root


def test_zip_bytes_depend_on_contents_only(tmp_path: Path) -> None:
    first = _tree(tmp_path / "one")
    second = shutil.copytree(first, tmp_path / "two")
    # Different times and modes on disk, different directory: the same zip.
    os.utime(first / "pkg" / "__init__.py", (0, 0))
    (second / "a_module.py").chmod(0o755)
    size = write_deterministic_zip(first, tmp_path / "one.zip")
    write_deterministic_zip(second, tmp_path / "two.zip")
    assert sha256_of(tmp_path / "one.zip") == sha256_of(tmp_path / "two.zip")

    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) == ["a_module.py", "lib-1.0.dist-info/METADATA", "pkg/__init__.py", "pkg/data.bin"]
    assert {(i.date_time, i.external_attr >> 16, i.create_system) for i in infos} == {(ZIP_DATE, 0o100644, 3)}
    assert size == sum(i.file_size for i in infos)

    (second / "a_module.py").write_text("pass  # changed\n")
    write_deterministic_zip(second, tmp_path / "two.zip")
    assert sha256_of(tmp_path / "one.zip") != sha256_of(tmp_path / "two.zip")


def test_a_tree_above_the_budget_is_refused_before_zipping(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    with open(tmp_path / "tree" / "big.bin", "wb") as big:
        big.truncate(MAX_UNZIPPED_BYTES + 1)  # sparse: no 50 MB written
    with pytest.raises(ArtifactError, match="50 MB"):
        write_deterministic_zip(tmp_path / "tree", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


# --- the real build (pip fetches the aarch64 wheels; ~10 s each with pip's cache warm) --------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the batchops sources, so edits made while the test runs cannot differ between builds."""
    return Path(shutil.copytree(package_source(), tmp_path_factory.mktemp("src") / "batchops"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    return build_lambda_artifact(tmp_path_factory.mktemp("first"), source=source)


@pytest.mark.slow
def test_two_builds_are_byte_identical(built: Path, source: Path, tmp_path: Path) -> None:
    # The second build goes through the command the deploy calls, in another process and directory.
    result = subprocess.run(
        [sys.executable, "-m", "batchops.rollout.lambda_package", "--out", str(tmp_path / "second"),
         "--source", str(source)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["sha256"] == sha256_of(built)
    assert sha256_of(tmp_path / "second" / ARTIFACT_NAME) == sha256_of(built)
    assert report["unzipped_bytes"] <= MAX_UNZIPPED_BYTES
    assert report["requirements"] == pinned_requirements()
    print(f"\nartifact sha256={report['sha256']} zipped={report['zipped_bytes']} unzipped={report['unzipped_bytes']}")


@pytest.mark.slow
def test_the_artifact_holds_batchops_and_aarch64_cpython312_wheels(built: Path, source: Path) -> None:
    with zipfile.ZipFile(built) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        native = {name: archive.read(name)[:20] for name in infos if name.endswith(".so")}
        wheel = archive.read(next(n for n in infos if n.startswith("pydantic_core-") and n.endswith("/WHEEL")))
    names = set(infos)
    shipped = {p.relative_to(source.parent).as_posix() for p in source.rglob("*") if p.is_file()
               and "__pycache__" not in p.parts and p.suffix != ".pyc"}  # fmt: skip
    operator_only = {n for n in shipped if _operator_only(n)}
    assert operator_only and operator_only.isdisjoint(names)  # the rollout, the local Organization, the simulator
    assert shipped - operator_only <= names
    assert "batchops/entrypoints/lambdas.py" in names and "batchops/py.typed" in names
    # Firehose writes the Iceberg tables' Parquet: no format writer of ours ships (sizes: docs/athena-data-path.md)
    assert "batchops/adapters/firehose_export.py" in names and "batchops/parquet.py" not in names

    assert sum(i.file_size for i in infos.values()) <= MAX_UNZIPPED_BYTES
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("bin/")]
    assert not [n for n in names if n.split("/")[0] in ("boto3", "botocore")]
    assert {(i.date_time, i.external_attr >> 16) for i in infos.values()} == {(ZIP_DATE, 0o100644)}

    (core,) = [n for n in native if n.startswith("pydantic_core/")]
    assert core.endswith(".cpython-312-aarch64-linux-gnu.so")
    assert b"Tag: cp312-cp312-manylinux" in wheel and b"aarch64" in wheel
    for name, header in native.items():
        assert header[:4] == b"\x7fELF" and header[4] == 2, name  # 64-bit ELF
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64, name
    pins = (built.parent / REQUIREMENTS_NAME).read_text().split()
    assert pins == pinned_requirements()


def _operator_only(name: str) -> bool:
    inside = name.removeprefix("batchops/")
    return any(inside == part or inside.startswith(f"{part}/") for part in NOT_IN_LAMBDA)


def _imports(module: str, root: Path) -> set[str]:
    """The batchops modules `module` imports, at any depth of its code, and the batchops modules any string of it
    names (eventsourcing resolves persistence modules and topics from strings)."""
    path = root / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = re.findall(r"\bbatchops(?:\.\w+)+", node.value)
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0] == "batchops"}
    return {m for m in found if (root / Path(*m.split("."))).with_suffix(".py").exists()
            or (root / Path(*m.split(".")) / "__init__.py").exists()}  # fmt: skip


def test_no_lambda_entry_point_needs_what_the_artifact_leaves_out() -> None:
    root = package_source().parent
    template = (root.parent / "central-account" / "template.yaml").read_text()
    handlers = {h.rsplit(".", 1)[0] for h in re.findall(r"Handler: (batchops[\w.]+)", template)}
    assert handlers == {
        "batchops.entrypoints.lambdas",
        "batchops.entrypoints.export_lambda",
        "batchops.entrypoints.waiting_lambda",
        "batchops.entrypoints.prices_lambda",
    }
    needed, todo = set(), list(handlers)
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += _imports(module, root)
    left_out = {m for m in needed if _operator_only(m.replace(".", "/") + ".py") or _operator_only(m.replace(".", "/"))}
    assert left_out == set(), f"Lambda code imports modules the artifact leaves out: {left_out}"
    assert (
        "batchops.adapters.dynamodb.views" in needed and "batchops.adapters.sqlite.event_store" in needed
    )  # the scan follows strings
