"""EC2 instances of the compute environments: launch, placement of attempts, scale-in when idle, spot reclaims."""

from __future__ import annotations

import heapq
import random

from batchops.simulation.events.autoscaling import autoscaling_event
from batchops.simulation.events.ec2 import ec2_state_event, rebalance_recommendation, spot_interruption_warning
from batchops.simulation.events.ecs import container_instance_event
from batchops.simulation.randomness import between, hex_digits, uuid4
from batchops.simulation.timeline import Timeline
from batchops.simulation.world import AccountRegion, ComputeEnvironment, Instance


class Fleet:
    """The instances of every EC2 compute environment, launched on demand and scaled in when idle."""

    def __init__(self, rng: random.Random, timeline: Timeline) -> None:
        self.rng = rng
        self.timeline = timeline
        self.idle_checks: list[tuple[int, int, Instance]] = []

    def scale_in_idle_instances(self, before: int | None) -> None:
        checks = self.idle_checks
        while checks and (before is None or checks[0][0] < before):
            due, _, instance = heapq.heappop(checks)
            if not instance.alive:
                continue
            if instance.terminated_ms is not None:
                if due == instance.terminated_ms:
                    instance.alive = False
                    instance.environment.instances.remove(instance)
                continue
            if due == instance.busy_until + instance.idle_ms:
                self._scale_in(instance, due)

    def _scale_in(self, instance: Instance, moment: int) -> None:
        rng = self.rng
        instance.alive = False
        instance.environment.instances.remove(instance)
        if rng.random() < 0.3:
            self.timeline.at(moment, container_instance_event, instance, "DRAINING", 0, 0)
        self.timeline.at(moment + between(rng, 0, 2_000), ec2_state_event, instance, "shutting-down")
        self.timeline.at(moment + between(rng, 5_000, 30_000), container_instance_event, instance, "INACTIVE", 0, 0)
        self.timeline.at(moment + between(rng, 20_000, 60_000), ec2_state_event, instance, "terminated")
        if rng.random() < 0.95:
            self.timeline.at(
                moment + between(rng, 30_000, 90_000), autoscaling_event, instance, False, moment, uuid4(rng)
            )

    def _launch(self, environment: ComputeEnvironment, wanted_ms: int, home: AccountRegion) -> Instance:
        rng = self.rng
        launched = wanted_ms + between(rng, 3_000, 15_000)
        ready = launched + between(rng, 60_000, 150_000)
        instance_type = rng.choice(environment.instance_types)
        instance_id = f"i-0{hex_digits(rng, 16)}"
        zone_index = between(rng, 0, len(home.availability_zones))
        instance = Instance(
            instance_id=instance_id,
            arn=f"arn:aws:ec2:{environment.region}:{environment.account}:instance/{instance_id}",
            environment=environment,
            instance_type=instance_type,
            availability_zone=home.availability_zones[zone_index],
            subnet=home.subnets[zone_index],
            container_instance_arn=(
                f"arn:aws:ecs:{environment.region}:{environment.account}:container-instance/"
                f"{environment.cluster_name}/{hex_digits(rng, 32)}"
            ),
            launched_ms=launched,
            ready_ms=ready,
            idle_ms=between(rng, 240_000, 720_000),
            slots=[ready] * instance_type.slots,
            earliest_free=ready,
            busy_until=ready,
        )
        environment.instances.append(instance)
        self.timeline.at(launched, ec2_state_event, instance, "pending")
        self.timeline.at(launched + between(rng, 10_000, 25_000), ec2_state_event, instance, "running")
        if rng.random() < 0.95:
            self.timeline.at(
                launched + between(rng, 25_000, 50_000), autoscaling_event, instance, True, launched, uuid4(rng)
            )
        self.timeline.at(ready, container_instance_event, instance, "ACTIVE", 0, 0)
        self._check_idle_later(instance)
        return instance

    def _check_idle_later(self, instance: Instance) -> None:
        heapq.heappush(
            self.idle_checks, (instance.busy_until + instance.idle_ms, self.timeline.next_sequence(), instance)
        )

    def place(
        self,
        environment: ComputeEnvironment,
        home: AccountRegion,
        wanted_ms: int,
        occupancy_ms: int,
        terminate_after_ms: int | None,
    ) -> tuple[Instance, int]:
        """Pick an instance with a free slot at (or just after) the wanted time; launch one if none fits."""
        for instance in environment.instances:
            start = max(wanted_ms, instance.ready_ms + 1_000)
            if instance.earliest_free > start or start - wanted_ms > 90_000:
                continue
            if start > instance.busy_until + instance.idle_ms:
                continue
            end = start + occupancy_ms
            if instance.warned_ms is not None and end > instance.warned_ms:
                continue
            slots = instance.slots
            chosen = -1
            for index, free_from in enumerate(slots):
                if free_from <= start:
                    chosen = index
                    break
            if chosen < 0:
                continue
            if terminate_after_ms is not None:
                terminated = start + terminate_after_ms
                # The instance dies with this attempt: nothing else may still run on it by then.
                if any(free_from > terminated for i, free_from in enumerate(slots) if i != chosen):
                    continue
            self._occupy(instance, chosen, end)
            return instance, start
        instance = self._launch(environment, wanted_ms, home)
        start = instance.ready_ms + between(self.rng, 1_000, 5_000)
        self._occupy(instance, 0, start + occupancy_ms)
        return instance, start

    def _occupy(self, instance: Instance, slot: int, end: int) -> None:
        instance.slots[slot] = end
        instance.earliest_free = min(instance.slots)
        if end > instance.busy_until:
            instance.busy_until = end
            if instance.terminated_ms is None:
                self._check_idle_later(instance)

    def reclaim(self, instance: Instance, warned: int, terminated: int, earliest: int) -> None:
        """A spot interruption: warning, ~2 minutes, then the instance is gone."""
        rng = self.rng
        instance.warned_ms = warned
        instance.terminated_ms = terminated
        if rng.random() < 0.6:
            recommended = max(earliest, warned - between(rng, 60_000, 480_000))
            self.timeline.at(recommended, rebalance_recommendation, instance)
        self.timeline.at(warned, spot_interruption_warning, instance)
        self.timeline.at(warned + between(rng, 500, 4_000), container_instance_event, instance, "DRAINING", 0, 0)
        self.timeline.at(terminated, ec2_state_event, instance, "shutting-down")
        self.timeline.at(terminated + between(rng, 5_000, 40_000), container_instance_event, instance, "INACTIVE", 0, 0)
        self.timeline.at(terminated + between(rng, 20_000, 60_000), ec2_state_event, instance, "terminated")
        if rng.random() < 0.95:
            self.timeline.at(
                terminated + between(rng, 30_000, 90_000),
                autoscaling_event,
                instance,
                False,
                terminated,
                uuid4(rng),
            )
        heapq.heappush(self.idle_checks, (terminated, self.timeline.next_sequence(), instance))
