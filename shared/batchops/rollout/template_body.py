"""The template text a deploy sends to CloudFormation: the file without what only its readers and tools use.

CloudFormation takes a template inline up to 51,200 bytes; past that it must be uploaded to S3 first, a write that a
dry run cannot make and a repeated deploy should not need. Left out of what is sent and compared, since the stack is
the same without them: comment lines and blank lines; checkov's `Metadata: checkov:` entries (why a finding does not
apply); the console's parameter groups (`AWS::CloudFormation::Interface`); and `DeletionPolicy: Delete` and
`UpdateReplacePolicy: Delete`, which say explicitly what CloudFormation does by default.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE_BODY_LIMIT = 51_200
"""Bytes of a TemplateBody CloudFormation accepts inline."""

_DROPPED_KEYS = ("checkov:", "AWS::CloudFormation::Interface:")
"""Blocks for tools and the console, dropped with everything indented under them."""
_DEFAULTS = ("DeletionPolicy: Delete", "UpdateReplacePolicy: Delete")
"""Resource attributes that state CloudFormation's default."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _without_blocks(lines: list[str]) -> list[str]:
    """Drop the `_DROPPED_KEYS` blocks, then a `Metadata:` key left with nothing under it."""
    kept: list[str] = []
    dropping = -1  # the indentation of the block being dropped: deeper lines go with it
    for line in lines:
        if dropping >= 0 and _indent(line) > dropping:
            continue
        dropping = _indent(line) if line.strip() in _DROPPED_KEYS else -1
        if dropping < 0:
            kept.append(line)
    return [
        line
        for i, line in enumerate(kept)
        if line.strip() != "Metadata:" or (i + 1 < len(kept) and _indent(kept[i + 1]) > _indent(line))
    ]


def template_body(path: Path) -> str:
    """The template as a deploy sends it: no comment or blank lines (a `#` inside a value or after a key stays), no
    checkov metadata or console parameter groups, no attributes that state a default."""
    lines = path.read_text().splitlines(keepends=True)
    kept = [
        line
        for line in lines
        if line.strip() and not line.lstrip().startswith("#") and not (_indent(line) == 4 and line.strip() in _DEFAULTS)
    ]
    return "".join(_without_blocks(kept))


def summary_body(body: str) -> str:
    """What GetTemplateSummary needs of a template too large to send inline, when no copy of it is in S3 (a dry run
    writes none): its parameters and resource types, without the resources' properties and the outputs (which only
    refer to resources). `body` is as `template_body` gives it."""
    kept: list[str] = []
    section = ""
    dropping = -1
    for line in body.splitlines(keepends=True):
        indent = _indent(line)
        if dropping >= 0 and indent > dropping:
            continue
        dropping = -1
        if indent == 0:
            section = line.strip()
        if section == "Outputs:" or (
            section == "Resources:" and indent == 4 and line.lstrip().startswith("Properties:")
        ):
            dropping = indent
            continue
        kept.append(line)
    return "".join(kept)
