"""Emulator only: make moto (as served by `ThreadedMotoServer`, in this process) do what AWS documents.

The product code is written for AWS and never branches on the emulator; these patches fill moto's gaps
that the rollout depends on. They change moto's classes in the running process, so they apply to a
ThreadedMotoServer started here (the local Organization, the end-to-end tests), never to AWS.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

# moto replaces a table to change its deletion protection, which the protection forbids: on the emulator the
# event store is created unprotected so that destroy can remove it.
EMULATOR_CENTRAL_PARAMETERS = {"DeletionProtection": "false"}

Setter = Callable[[Any, str, Any], None]
_applied = False


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


def _one_request_at_a_time(original: Any) -> Any:
    """Each DynamoDB request is atomic on AWS; moto's tables are plain dicts that a query iterates while another
    thread's put resizes them ("dictionary changed size during iteration"). Serve one request at a time."""
    lock = threading.RLock()

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    return call_action


def patch_moto(setter: Setter | None = None) -> None:
    """Apply the patches to moto's classes: with `setter` (e.g. pytest's monkeypatch.setattr, undone after a
    test) every call patches; without, once per process and for good."""
    global _applied
    if setter is None:
        if _applied:
            return
        _applied = True
        setter = setattr
    from moto.awslambda.models import LambdaBackend
    from moto.cloudformation import models as cfn_models
    from moto.cloudformation import responses as cfn_responses
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import table as dynamodb_table
    from moto.dynamodb.responses import DynamoHandler

    setter(dynamodb_table, "dynamo_json_dump", _json_dump_with_binary)
    setter(DynamoHandler, "call_action", _one_request_at_a_time(DynamoHandler.call_action))
    setter(dynamodb_models, "copy", _TablesUncopied())
    dynamodb = dynamodb_models.DynamoDBBackend
    setter(dynamodb, "transact_write_items", _transact_with_item_backups(dynamodb.transact_write_items))
    setter(LambdaBackend, "send_dynamodb_items", _skip_disabled_stream_mappings(LambdaBackend.send_dynamodb_items))
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
