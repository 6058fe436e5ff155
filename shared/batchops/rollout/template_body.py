"""The template text a deploy sends to CloudFormation: the file without its comment lines.

CloudFormation takes a template inline up to 51,200 bytes; past that it must be uploaded to S3 first, a write that a
dry run cannot make and a repeated deploy should not need. The comments say why the template is as it is, for its
readers in the repository; CloudFormation needs none of them, so they are left out of what is sent and compared.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE_BODY_LIMIT = 51_200
"""Bytes of a TemplateBody CloudFormation accepts inline."""


def template_body(path: Path) -> str:
    """The template without its full-line comments (a `#` inside a value or after a key stays)."""
    lines = path.read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.lstrip().startswith("#"))
