"""Emulator only: make moto (as served by `ThreadedMotoServer`, in this process) do what AWS documents.

The product code is written for AWS and never branches on the emulator; these patches fill moto's gaps
that the rollout depends on. They change moto's classes in the running process, so they apply to a
ThreadedMotoServer started here (the local Organization, the end-to-end tests), never to AWS.
"""

from __future__ import annotations

import base64
import calendar
import copy
import functools
import json
import random
import string
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

# moto replaces a table to change its deletion protection, which the protection forbids: on the emulator the
# event store is created unprotected so that destroy can remove it.
EMULATOR_CENTRAL_PARAMETERS = {"DeletionProtection": "false"}

Setter = Callable[[Any, str, Any], None]
_applied = False
# Tests set this: every response the fast DynamoDB serializer writes is compared with moto's own serializer.
VERIFY_FAST_PATHS = False


def _execute_change_set_with_outputs(original: Any) -> Any:
    """moto builds a stack's outputs when the stack is created, not when a CREATE change set runs."""

    def execute(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        original(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            stack._parse_template()
            stack.output_map = stack._create_output_map()

    return execute


def _stack_set_keeps(original: Any) -> Any:
    """moto drops AutoDeployment and ManagedExecution; AWS stores and reports them."""

    def call(self: Any) -> Any:
        result = original(self)
        params = self._get_params()
        stack_set = self.cloudformation_backend.describe_stack_set(params["StackSetName"])
        if "AutoDeployment" in params:
            stack_set.auto_deployment = {
                "Enabled": params["AutoDeployment"].get("Enabled") in (True, "true"),
                "RetainStacksOnAccountRemoval": params["AutoDeployment"].get("RetainStacksOnAccountRemoval")
                in (True, "true"),
            }
        if "ManagedExecution" in params:
            stack_set.managed_execution_active = params["ManagedExecution"].get("Active") in (True, "true")
        return result

    return call


def _delete_stack_instances_by_ou(original: Any) -> Any:
    """moto deletes by Accounts only; SERVICE_MANAGED StackSets delete by DeploymentTargets OUs on AWS."""
    from moto.cloudformation import responses as cfn_responses
    from moto.organizations.models import organizations_backends

    def call(self: Any) -> Any:
        targets = self._get_params().get("DeploymentTargets") or {}
        ous = targets.get("OrganizationalUnitIds") or []
        if ous and not self._get_param("Accounts"):
            org = organizations_backends[self.current_account]["aws"]
            below = set(ous) | {ou.id for ou in org.ou if ou.parent_id in ous}
            accounts = [a.id for a in org.accounts if a.parent_id in below]
            stack_set = self.cloudformation_backend.delete_stack_instances(
                self._get_param("StackSetName"), accounts, self._get_param("Regions", [])
            )
            action_result = cfn_responses.ActionResult  # type: ignore[attr-defined]
            return action_result({"OperationId": stack_set.operations[-1]["OperationId"]})
        return original(self)

    return call


def _json_dump_with_binary(dynamo_object: Any) -> str:
    """moto sizes a stream record by JSON-dumping it, which fails on a binary attribute (the event store's state);
    AWS carries binary as base64."""
    import base64
    import json

    from moto.dynamodb.models.utilities import DynamoJsonEncoder

    class Encoder(DynamoJsonEncoder):  # type: ignore[misc]
        def default(self, o: Any) -> Any:
            if isinstance(o, bytes):
                return base64.b64encode(o).decode()
            return super().default(o)

    return json.dumps(dynamo_object, cls=Encoder)


def _skip_disabled_stream_mappings(original: Any) -> Any:
    """moto hands every stream record to the mapped Lambda even when the mapping is disabled; AWS does not."""

    def send(self: Any, function_arn: str, items: Any, source: str) -> Any:
        for mapping in self._event_source_mappings.values():
            if (mapping.function_arn, mapping.event_source_arn) == (function_arn, source) and not mapping.enabled:
                return None
        return original(self, function_arn, items, source)

    return send


class _TablesUncopied:
    """The `copy` module as moto's DynamoDB backend sees it once patched: tables are not deep-copied."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _transact_with_item_backups(original: Any) -> Any:
    """moto deep-copies every table a transaction names (stream records included) to roll a cancelled one back:
    each transaction costs the size of the tables, so the emulator slows to a crawl as they grow. Back up only
    the items the transaction names, and the stream's length, and restore those."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        backups: list[tuple[Any, Any, Any, Any]] = []
        streams: dict[str, tuple[Any, int]] = {}
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            source = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in source:
                continue
            hash_key = DynamoType(source[table.hash_key_attr])
            range_key = DynamoType(source[table.range_key_attr]) if table.range_key_attr in source else None
            backups.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            if table.stream_shard is not None:
                streams.setdefault(table.name, (table.stream_shard, len(table.stream_shard.items)))
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(backups):
                bucket = table.items[hash_key] if range_key is not None else table.items
                key = range_key if range_key is not None else hash_key
                if item is None:
                    bucket.pop(key, None)
                else:
                    bucket[key] = item
            for shard, length in streams.values():
                del shard.items[length:]
            raise

    return transact


_DYNAMODB_LOCK = threading.RLock()


def _one_request_at_a_time(original: Any) -> Any:
    """Each DynamoDB request is atomic on AWS; moto's tables are plain dicts that a query iterates while another
    thread's put resizes them ("dictionary changed size during iteration"). Serve one request at a time."""

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    return call_action


# --- costs moto has and AWS does not (the local Organization's volume depends on these) ---------------------


def _wall_clock_seconds(dt: datetime | None = None) -> float:
    """moto's unix_time builds two datetimes per call; SQS asks it for every message of the queue on every send and
    receive (visibility, delay), which made each request cost the queue's length in datetime arithmetic."""
    if dt is None:
        return time.time()
    from moto.core.utils import unix_time

    return float(unix_time(dt))


def _wall_clock_millis(dt: datetime | None = None) -> float:
    return _wall_clock_seconds(dt) * 1000.0


def _retention_check_without_attributes(self: Any, queue_name: str, message: Any) -> bool:
    """moto reads the retention period through get_queue_attributes, which recounts the whole queue (visible,
    delayed, in flight) for every received message: O(queue) per message. Read the queue's setting directly."""
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > time.time())


def _moto_modules_cached(original: Any) -> Any:
    """moto lists its package directory (a listdir and a stat per service) on every request to route it."""
    modules = functools.cache(lambda: tuple(original()))

    @functools.wraps(original)
    def listed() -> tuple[str, ...]:
        return modules()  # type: ignore[no-any-return]

    return listed


# The data-plane actions whose results are plain JSON once moto turned its items into {type: value} dicts.
_PLAIN_JSON_ACTIONS = {
    "dynamodb": frozenset(
        {
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "BatchWriteItem",
            "TransactWriteItems",
            "TransactGetItems",
        }
    ),
    "dynamodbstreams": frozenset({"GetRecords"}),
}


def _plain_json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):  # as moto's serializer writes a timestamp: epoch seconds, milliseconds kept
        seconds = calendar.timegm(value.timetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


@functools.cache
def _output_members(service: str, action: str) -> frozenset[str]:
    """The top-level members of an action's output shape (moto's serializer leaves anything else out)."""
    from moto.core.utils import get_service_model

    shape = get_service_model(service).operation_model(action).output_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def _plain_json(original: Any, service: str) -> Any:
    """moto serialises every response by walking botocore's output shape member by member (a few ms for an item
    with a dozen attributes, the largest cost of a GetItem here; half a second for a page of stream records). The
    results of the data-plane actions are already the wire's JSON (items as {type: value}, binary as bytes): dump
    them directly. With VERIFY_FAST_PATHS (the tests), each body is checked against moto's own serializer."""
    actions = _PLAIN_JSON_ACTIONS[service]

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        action = self._get_action()
        if not isinstance(result, dict) or action not in actions:
            return original(self, action_result)
        members = _output_members(service, action)
        plain = _without_none({k: v for k, v in result.items() if k in members})
        body = json.dumps(plain, default=_plain_json_default, separators=(",", ":"))
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        if VERIFY_FAST_PATHS:
            status, slow_headers, slow_body = original(self, action_result)
            if (status, json.loads(slow_body), slow_headers.get("Content-Type")) != (
                200,
                json.loads(body),
                headers["Content-Type"],
            ):
                raise AssertionError(
                    f"fast {service} serializer differs from moto's: {body[:300]} != {slow_body[:300]}"
                )
        return 200, headers, body

    return serialized


def _query_one_partition(original: Any) -> Any:
    """A base-table query of one partition key made moto sort every item of the table (all partitions) and then
    filter them: O(table) per query, and the projector's edge queries run against the growing meta table. Let it
    see only the queried partition (the same items, in the same order; requests are served one at a time)."""

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("index_name") or hash_key is None or not self.range_key_attr:
            return original(self, hash_key, *args, **kwargs)
        with _DYNAMODB_LOCK:
            partition = self.items.get(hash_key) or {}
            self.all_items = lambda: sorted(partition.values(), key=lambda item: item.range_key)
            try:
                return original(self, hash_key, *args, **kwargs)
            finally:
                del self.all_items

    return query


# An item's size limit, checked on every attribute set: moto sums the sizes of every attribute set so far each time
# (quadratic in the attributes, the largest cost of a PutItem of a job row). A running total says the same for any
# item well below the limit; near it (or after in-place changes the total cannot see) moto's own check decides.
_FAST_SIZE_CHECK_BELOW = 200_000


def _item_size_checked_incrementally(original: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    def size_of(value: Any) -> int:
        return int(value.size()) if type(value) is DynamoType else int(bytesize(str(value)))

    def setitem(self: Any, key: str, value: Any) -> None:
        known = self.__dict__.get("_batchops_size")
        new = int(bytesize(key)) + size_of(value)
        if known is None or known + new > _FAST_SIZE_CHECK_BELOW:
            original(self, key, value)
            self.__dict__["_batchops_size"] = sum(int(bytesize(k)) + size_of(v) for k, v in self.items())
            return
        if key in self:
            known -= int(bytesize(key)) + size_of(dict.__getitem__(self, key))
        dict.__setitem__(self, key, value)
        self.__dict__["_batchops_size"] = known + new

    return setitem


class _EventBusPolicy:
    """AWS::Events::EventBusPolicy, which moto's CloudFormation skips (the bus keeps no policy, so the rollout's check
    of the policy would fail on the emulator alone): one statement of the bus's policy, keyed by its StatementId."""

    def __init__(self, account_id: str, region_name: str, bus_name: str, statement_id: str) -> None:
        self.account_id, self.region_name = account_id, region_name
        self.bus_name, self.physical_resource_id = bus_name, statement_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Events::EventBusPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    def is_created(self) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> _EventBusPolicy:
        from moto.events.models import EventBusPolicyStatement, events_backends

        properties = cloudformation_json["Properties"]
        bus_name = properties.get("EventBusName") or "default"
        sid = properties["StatementId"]
        backend = events_backends[account_id][region_name]
        statement = properties.get("Statement")
        if statement:
            bus = backend.describe_event_bus(bus_name)
            bus._statements[sid] = EventBusPolicyStatement.from_dict({**statement, "Sid": sid})
        else:  # the older properties: one principal (an account or "*"), optionally one condition
            action = properties.get("Action", "events:PutEvents")
            backend.put_permission(bus_name, action, properties["Principal"], sid, properties.get("Condition"), "")
        return cls(account_id, region_name, bus_name, sid)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> _EventBusPolicy:
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.events.models import events_backends

        bus = events_backends[account_id][region_name].event_buses.get(self.bus_name)
        if bus is not None:  # the bus may be gone first
            bus.remove_statement(self.physical_resource_id)


def _with_event_bus_policy(original: Any) -> Any:
    def resource_class(resource_type: str) -> Any:
        return _EventBusPolicy if resource_type == _EventBusPolicy.cloudformation_type() else original(resource_type)

    return resource_class


def _receipt_handle() -> str:
    """moto draws a receipt handle's 185 characters one call at a time from its seeded random."""
    return "".join(random.choices(string.ascii_lowercase, k=185))


def _random_string(self: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
    """moto's request ids: the same alphabet, one draw of `length` characters instead of `length` draws."""
    pool = string.ascii_letters + (string.digits if include_digits else "")
    drawn = "".join(self.choices(pool, k=length))
    return drawn.lower() if lower_case else drawn


def patch_moto(setter: Setter | None = None) -> None:
    """Apply the patches to moto's classes: with `setter` (e.g. pytest's monkeypatch.setattr, undone after a
    test) every call patches; without, once per process and for good."""
    global _applied
    if setter is None:
        if _applied:
            return
        _applied = True
        setter = setattr
    _patch_routing(setter)
    _patch_dynamodb(setter)
    _patch_sqs(setter)
    _patch_cloudformation(setter)


def _patch_routing(setter: Setter) -> None:
    """moto's request routing: the same answers every time, so computed once."""
    from moto import backends
    from moto.core import responses as core_responses
    from moto.core import utils as core_utils
    from moto.moto_api._internal.moto_random import MotoRandom

    setter(MotoRandom, "get_random_string", _random_string)
    # Routing each request: moto lists a handler class's methods and converts names, the same answers every time.
    setter(core_responses, "method_names_from_class", functools.cache(core_utils.method_names_from_class))
    setter(core_responses, "camelcase_to_underscores", functools.cache(core_utils.camelcase_to_underscores))
    setter(backends, "list_of_moto_modules", _moto_modules_cached(backends.list_of_moto_modules))


def _patch_dynamodb(setter: Setter) -> None:
    """DynamoDB and its streams: binary and JSON as AWS returns them, item sizes, one request at a time."""
    from moto.awslambda.models import LambdaBackend
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models import table as dynamodb_table
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    setter(dynamodb_table, "dynamo_json_dump", _json_dump_with_binary)
    setter(DynamoHandler, "serialized", _plain_json(DynamoHandler.serialized, "dynamodb"))
    setter(DynamoDBStreamsHandler, "serialized", _plain_json(DynamoDBStreamsHandler.serialized, "dynamodbstreams"))
    setter(
        dynamo_type.LimitedSizeDict,
        "__setitem__",
        _item_size_checked_incrementally(dynamo_type.LimitedSizeDict.__setitem__),
    )
    setter(dynamodb_table.Table, "query", _query_one_partition(dynamodb_table.Table.query))
    setter(DynamoHandler, "call_action", _one_request_at_a_time(DynamoHandler.call_action))
    setter(dynamodb_models, "copy", _TablesUncopied())
    dynamodb = dynamodb_models.DynamoDBBackend
    setter(dynamodb, "transact_write_items", _transact_with_item_backups(dynamodb.transact_write_items))
    setter(LambdaBackend, "send_dynamodb_items", _skip_disabled_stream_mappings(LambdaBackend.send_dynamodb_items))


def _patch_sqs(setter: Setter) -> None:
    """SQS: receipt handles, the wall clock, the retention check."""
    from moto.core import utils as core_utils
    from moto.sqs import models as sqs_models

    setter(sqs_models, "generate_receipt_handle", _receipt_handle)
    setter(sqs_models, "camelcase_to_underscores", functools.cache(core_utils.camelcase_to_underscores))
    setter(sqs_models, "unix_time", _wall_clock_seconds)
    setter(sqs_models, "unix_time_millis", _wall_clock_millis)
    setter(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period", _retention_check_without_attributes)


def _patch_cloudformation(setter: Setter) -> None:
    """CloudFormation: the bus policy it skips, change-set outputs, what a StackSet keeps, deletes by OU."""
    from moto.cloudformation import models as cfn_models
    from moto.cloudformation import parsing as cfn_parsing
    from moto.cloudformation import responses as cfn_responses

    setter(cfn_parsing, "resource_class_from_type", _with_event_bus_policy(cfn_parsing.resource_class_from_type))
    backend = cfn_models.CloudFormationBackend
    setter(backend, "execute_change_set", _execute_change_set_with_outputs(backend.execute_change_set))
    response = cfn_responses.CloudFormationResponse
    setter(response, "create_stack_set", _stack_set_keeps(response.create_stack_set))
    setter(response, "update_stack_set", _stack_set_keeps(response.update_stack_set))
    setter(response, "delete_stack_instances", _delete_stack_instances_by_ou(response.delete_stack_instances))
    setter(
        cfn_models.StackSet,
        "managed_execution",
        property(lambda self: {"Active": getattr(self, "managed_execution_active", False)}),
    )
