"""The local forwarder filters exactly as the member rules do (checked against the emulator's own matcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml
from moto.events.models import EventPattern

from batchops.local.pipeline import pattern_matches
from batchops.simulation import SimulationSettings, simulate
from conftest import all_samples

MEMBER_TEMPLATE = Path(__file__).parents[2] / "member-account" / "template.yaml"


def _resolve(value: Any, account: str, region: str) -> Any:
    """Render the template's !Sub for one member stack (account, region)."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            for name, concrete in (("AWS::Partition", "aws"), ("AWS::Region", region), ("AWS::AccountId", account)):
                text = text.replace("${" + name + "}", concrete)
            return text
        return {k: _resolve(v, account, region) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, account, region) for v in value]
    return value


def _member_patterns() -> list[dict[str, Any]]:
    template = cfn_yaml.loads(MEMBER_TEMPLATE.read_text())
    return [
        json.loads(json.dumps(resource["Properties"]["EventPattern"]))
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Events::Rule"
    ]


def test_the_forwarder_matches_like_the_emulators_eventbridge() -> None:
    patterns = _member_patterns()
    assert patterns
    events = all_samples() + list(simulate(SimulationSettings(accounts=1, regions=1, jobs=15, seed=2)))
    noise = {
        "version": "0",
        "id": "x",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2025-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/web"},
    }
    events.append(noise)
    checked = 0
    for event in events:
        for template_pattern in patterns:
            pattern = _resolve(template_pattern, event["account"], event["region"])
            # moto routes rules with this matcher: the forwarder must agree with it on every event.
            expected = EventPattern.load(json.dumps(pattern)).matches_event(event)
            assert pattern_matches(pattern, event) == expected, (pattern, event["detail-type"])
            checked += 1
    assert checked > 20
    assert not any(pattern_matches(_resolve(p, "123456789012", "us-east-1"), noise) for p in patterns)
