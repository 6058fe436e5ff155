"""The simulated accounts and regions: their compute environments, job queues and job definitions."""

from __future__ import annotations

import random
from collections import deque

from batchops.simulation.catalog import (
    FARGATE_ENVIRONMENTS,
    FARGATE_QUEUES,
    FARGATE_TEMPLATES,
    GPU_TEMPLATE,
    INSTANCE_TYPES,
    ON_DEMAND_ENVIRONMENTS,
    ON_DEMAND_QUEUES,
    PLAIN_EC2_TEMPLATES,
    SIDECAR_TEMPLATE,
    SPOT_ENVIRONMENTS,
    SPOT_QUEUES,
    InstanceType,
    JobTemplate,
)
from batchops.simulation.events.cloudtrail import cloudtrail_create_compute_environment
from batchops.simulation.randomness import between, cumulative, hex_digits, uuid4
from batchops.simulation.settings import REGIONS, SimulationSettings
from batchops.simulation.timeline import Timeline
from batchops.simulation.world import AccountRegion, ComputeEnvironment, Definition, Queue


def build_account_regions(rng: random.Random, settings: SimulationSettings) -> list[AccountRegion]:
    """Every (account, region) of the run, accounts in the order drawn, regions in `REGIONS` order."""
    accounts: list[str] = []
    while len(accounts) < settings.accounts:
        if not accounts:
            # One account with a leading zero: account ids are strings, never numbers.
            candidate = f"0{rng.randrange(10**10, 10**11):011d}"
        else:
            candidate = f"{rng.randrange(10**11, 10**12):012d}"
        if candidate not in accounts:
            accounts.append(candidate)
    homes: list[AccountRegion] = []
    for account in accounts:
        for region in REGIONS[: settings.regions]:
            homes.append(_account_region(rng, account, region))
    return homes


def _account_region(rng: random.Random, account: str, region: str) -> AccountRegion:
    zones = tuple(f"{region}{letter}" for letter in "abc")
    subnets = tuple(f"subnet-{hex_digits(rng, 17)}" for _ in zones)
    spot_spec = rng.choice(SPOT_ENVIRONMENTS)
    on_demand_spec = rng.choice(ON_DEMAND_ENVIRONMENTS)
    spot = _compute_environment(rng, account, region, spot_spec[0], "SPOT", spot_spec[1:])
    on_demand = _compute_environment(rng, account, region, on_demand_spec[0], "EC2", on_demand_spec[1:])
    fargate_type = "FARGATE_SPOT" if rng.random() < 0.3 else "FARGATE"
    fargate = _compute_environment(rng, account, region, rng.choice(FARGATE_ENVIRONMENTS), fargate_type, None)
    ec2_templates = list(rng.sample(PLAIN_EC2_TEMPLATES, 3))
    spot_templates = [*ec2_templates, SIDECAR_TEMPLATE]
    spot_weights = [1.0, 1.0, 1.0, 0.35]
    if spot.has_gpu:
        spot_templates.append(GPU_TEMPLATE)
        spot_weights.append(1.0)
    # Spot first, on-demand as the fallback when spot capacity is short.
    queues = [
        _queue(
            account,
            region,
            rng.choice(SPOT_QUEUES),
            {spot: 0.85, on_demand: 0.15},
            dict(zip(spot_templates, spot_weights, strict=True)),
            "blue" if rng.random() < 0.3 else None,
        ),
        _queue(
            account,
            region,
            rng.choice(FARGATE_QUEUES),
            {fargate: 1.0},
            dict.fromkeys(rng.sample(FARGATE_TEMPLATES, 3), 1.0),
        ),
    ]
    queue_weights = [0.55, 0.3]
    if rng.random() < 0.6:
        templates = {**dict.fromkeys(rng.sample(PLAIN_EC2_TEMPLATES, 2), 1.0), SIDECAR_TEMPLATE: 0.35}
        queues.append(_queue(account, region, rng.choice(ON_DEMAND_QUEUES), {on_demand: 1.0}, templates))
        queue_weights.append(0.25)
    return AccountRegion(
        account=account,
        region=region,
        availability_zones=zones,
        subnets=subnets,
        security_group=f"sg-{hex_digits(rng, 17)}",
        environments=[spot, on_demand, fargate],
        queues=queues,
        queue_weights=tuple(cumulative(queue_weights)),
        definitions={},
        recent_successes=deque(maxlen=12),
    )


def _queue(
    account: str,
    region: str,
    name: str,
    environments: dict[ComputeEnvironment, float],
    templates: dict[JobTemplate, float],
    share_identifier: str | None = None,
) -> Queue:
    return Queue(
        name=name,
        arn=f"arn:aws:batch:{region}:{account}:job-queue/{name}",
        environments=tuple(environments),
        environment_weights=tuple(cumulative(list(environments.values()))),
        templates=tuple(templates),
        template_weights=tuple(cumulative(list(templates.values()))),
        share_identifier=share_identifier,
    )


def _compute_environment(
    rng: random.Random,
    account: str,
    region: str,
    name: str,
    resource_type: str,
    ec2_spec: tuple[tuple[str, ...], str, bool] | None,
) -> ComputeEnvironment:
    instance_types: tuple[InstanceType, ...] = ()
    architecture, has_gpu = "x86_64", False
    if ec2_spec is not None:
        instance_types = tuple(INSTANCE_TYPES[n] for n in ec2_spec[0])
        architecture, has_gpu = ec2_spec[1], ec2_spec[2]
    cluster = f"AWSBatch-{name}-{uuid4(rng)}"
    group = f"{cluster}-asg-{hex_digits(rng, 8)}"
    group_arn = f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:{uuid4(rng)}:autoScalingGroupName/{group}"
    return ComputeEnvironment(
        account=account,
        region=region,
        name=name,
        arn=f"arn:aws:batch:{region}:{account}:compute-environment/{name}",
        resource_type=resource_type,
        platform="EC2" if ec2_spec is not None else "FARGATE",
        pricing="fargate" if ec2_spec is None else "spot" if resource_type == "SPOT" else "on-demand",
        cluster_name=cluster,
        cluster_arn=f"arn:aws:ecs:{region}:{account}:cluster/{cluster}",
        autoscaling_group=group,
        autoscaling_group_arn=group_arn,
        instance_types=instance_types,
        architecture=architecture,
        has_gpu=has_gpu,
        ami=f"ami-{hex_digits(rng, 17)}",
    )


def announce_compute_environments(
    rng: random.Random, timeline: Timeline, homes: list[AccountRegion], start_ms: int
) -> int:
    """CloudTrail CreateComputeEnvironment for most CEs; returns the time of the last one."""
    moment = start_ms
    for index, home in enumerate(homes):
        for environment in home.environments:
            # Leave some EC2 CEs without a trail so pricing must come from spot signals.
            if index == 0 and environment.resource_type == "SPOT":
                continue
            if index == 1 and environment.resource_type == "EC2":
                continue
            if rng.random() < 0.12:
                continue
            moment += between(rng, 1_000, 4_000)
            timeline.at(moment, cloudtrail_create_compute_environment, home, environment, uuid4(rng), uuid4(rng))
    return moment


def job_definition(rng: random.Random, home: AccountRegion, template: JobTemplate) -> Definition:
    """The account-region's job definition of a template, registered on its first job."""
    known = home.definitions.get(template.name)
    if known is not None:
        return known
    account, region = home.account, home.region
    revision = between(rng, 1, 14)
    registry = f"{account}.dkr.ecr.{region}.amazonaws.com"
    registered = Definition(
        template=template,
        arn=f"arn:aws:batch:{region}:{account}:job-definition/{template.name}:{revision}",
        image=f"{registry}/{template.repository}",
        sidecar_image="public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
        image_digest=f"sha256:{hex_digits(rng, 64)}",
        execution_role=f"arn:aws:iam::{account}:role/BatchEcsExecutionRole",
        job_role=f"arn:aws:iam::{account}:role/{template.name}-job-role",
        task_definition_arn=f"arn:aws:ecs:{region}:{account}:task-definition/{template.name}:{between(rng, 1, 40)}",
        empty_platform_capabilities=template.platform == "EC2" and rng.random() < 0.3,
        log_router_first=rng.random() < 0.5,
        propagate_tags=rng.random() < 0.5,
        secrets=tuple(
            (name, f"arn:aws:secretsmanager:{region}:{account}:secret:prod/{name.lower()}-{hex_digits(rng, 6)}")
            for name in template.secrets
        ),
    )
    home.definitions[template.name] = registered
    return registered
