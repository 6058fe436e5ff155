"""DynamoDB read and write units as AWS bills them, counted from the requests a boto3 client makes (botocore hooks).

moto answers `ReturnConsumedCapacity` with a constant per operation, not the item sizes, so the units are computed
here from the items themselves with AWS's documented rules (sizes by `batchops.adapters.dynamodb.tables.item_size`):

- a write costs 1 WRU per started KB of the larger of the item before and after (a failed condition is billed too),
  2x inside TransactWriteItems; a delete costs the deleted item's size;
- each GSI whose entry is added, removed or changed costs a write of its entry (index keys + table keys + projected
  attributes + 100 bytes), two when an index key's value changes (the old entry deleted, the new one put);
- a strongly consistent read costs 1 RCU per started 4 KB of the whole item (a projection expression that keeps the
  keys reads the whole item all the same), 0.5 eventually consistent; a read that finds nothing costs the minimum; a
  Query adds the sizes of the items it returns and rounds once per page; BatchGetItem rounds per item.

The meter keeps a copy of every item written through it (sizes need the item before a write), so every write to the
metered tables must go through a metered client.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchops.adapters.dynamodb.tables import item_size

Item = dict[str, dict[str, Any]]
INDEX_ENTRY_OVERHEAD = 100
"""Bytes DynamoDB adds to every index entry (and to every item for storage)."""


@dataclass(frozen=True)
class TableShape:
    """What the meter needs of a table: its key attributes and its global secondary indexes."""

    keys: tuple[str, ...]
    indexes: tuple[tuple[str, tuple[str, ...], str], ...] = ()  # (name, key attributes, projection type)


@dataclass
class Usage:
    """Units and requests of one category (e.g. "projector: view writes, jobs")."""

    read_units: float = 0.0
    write_units: float = 0.0
    requests: int = 0
    items: int = 0


def write_units(size: int, *, transactional: bool = False) -> int:
    """WRU of a write of an item of `size` bytes (at least 1 KB)."""
    return max(1, math.ceil(size / 1024)) * (2 if transactional else 1)


def read_units(size: int, *, consistent: bool) -> float:
    """RCU of a read of `size` bytes (at least one 4 KB unit; half for an eventually consistent read)."""
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


@dataclass
class CapacityMeter:
    """Units per category, for every request of the clients attached; `category(operation, table, key)` names it (the
    key of the item, None for a Query or Scan page or for a request as a whole)."""

    shapes: Mapping[str, TableShape]
    category: Callable[[str, str, Mapping[str, Any] | None], str]
    usage: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    items: dict[str, dict[tuple[Any, ...], Item]] = field(default_factory=lambda: defaultdict(dict))
    stream_records: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fetch: Callable[[str, Item], Item | None] | None = None  # reads an item unmetered (after an UpdateItem)
    _attached: set[int] = field(default_factory=set)

    def attach(self, client: Any) -> None:
        """Meter every DynamoDB request of this client (once, however often it is attached)."""
        if id(client.meta.events) in self._attached:
            return
        self._attached.add(id(client.meta.events))
        client.meta.events.register("before-parameter-build.dynamodb", self._remember_params)
        client.meta.events.register("after-call.dynamodb", self._after_call)

    @staticmethod
    def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["metered_params"] = dict(params)

    def _after_call(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("metered_params")
        if params is None:
            return
        failed = "Error" in parsed
        handler = getattr(self, f"_on_{model.name}", None)
        if handler is not None:
            handler(params, parsed, failed)

    # helpers ---------------------------------------------------------------------------------------------
    def _key(self, table: str, item: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_plain(item[name]) for name in self.shapes[table].keys)

    def _add(
        self,
        operation: str,
        table: str,
        key: Mapping[str, Any] | None = None,
        *,
        reads: float = 0.0,
        writes: float = 0.0,
        items: int = 0,
    ) -> None:
        usage = self.usage[self.category(operation, table, key)]
        usage.read_units += reads
        usage.write_units += writes
        usage.items += items

    def _request(self, operation: str, table: str) -> None:
        self.usage[self.category(operation, table, None)].requests += 1

    def _stored(self, table: str, key_item: Mapping[str, Any]) -> Item | None:
        return self.items[table].get(self._key(table, key_item))

    def _write(self, operation: str, table: str, new: Item | None, key_item: Mapping[str, Any], **how: bool) -> None:
        """Bill one item write (a put when `new`, a delete when None) and, unless it failed, apply it."""
        if table not in self.shapes:
            return
        old = self._stored(table, key_item)
        size = max(item_size(new) if new else 0, item_size(old) if old else 0)
        units = write_units(size, transactional=how.get("transactional", False))
        self._add(operation, table, key_item, writes=units, items=1)
        if how.get("failed"):
            return
        shape = self.shapes[table]
        index_writes = sum(self._index_writes(index, shape.keys, old, new) for index in shape.indexes)
        if index_writes:
            self._add(operation, f"{table}#indexes", key_item, writes=index_writes)
        if old != new:
            self.stream_records[table] += 1
        if new is None:
            self.items[table].pop(self._key(table, key_item), None)
        else:
            self.items[table][self._key(table, key_item)] = new

    def _index_entry(self, index: tuple[str, tuple[str, ...], str], table_keys: tuple[str, ...], item: Item) -> Item:
        _, keys, projection = index
        if projection == "ALL":
            return item
        return {name: item[name] for name in (*table_keys, *keys) if name in item}

    def _index_writes(
        self, index: tuple[str, tuple[str, ...], str], table_keys: tuple[str, ...], old: Item | None, new: Item | None
    ) -> int:
        """WRU of keeping one GSI up to date with a change of its base item from `old` to `new`."""
        in_old = old is not None and all(k in old for k in index[1])
        in_new = new is not None and all(k in new for k in index[1])
        before = self._index_entry(index, table_keys, old) if in_old and old else None
        after = self._index_entry(index, table_keys, new) if in_new and new else None
        if before == after:
            return 0
        units = 0
        moved = before is None or after is None or any(before[k] != after[k] for k in index[1])
        if before is not None and moved:
            units += write_units(item_size(before) + INDEX_ENTRY_OVERHEAD)
        if after is not None:
            units += write_units(item_size(after) + INDEX_ENTRY_OVERHEAD)
        return units

    def _read(self, operation: str, table: str, key_item: Mapping[str, Any], consistent: bool) -> None:
        if table not in self.shapes:
            return
        stored = self._stored(table, key_item)
        self._add(
            operation, table, key_item, reads=read_units(item_size(stored) if stored else 0, consistent=consistent)
        )

    # operations ------------------------------------------------------------------------------------------
    def _on_PutItem(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        self._request("PutItem", params["TableName"])
        self._write("PutItem", params["TableName"], params["Item"], params["Item"], failed=failed)

    def _on_DeleteItem(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        self._request("DeleteItem", params["TableName"])
        self._write("DeleteItem", params["TableName"], None, params["Key"], failed=failed)

    def _on_UpdateItem(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        table = params["TableName"]
        self._request("UpdateItem", table)
        new = None if failed or self.fetch is None else self.fetch(table, params["Key"])
        self._write("UpdateItem", table, new or self._stored(table, params["Key"]) or params["Key"], params["Key"],
                    failed=failed)  # fmt: skip

    def _on_BatchWriteItem(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        unprocessed = parsed.get("UnprocessedItems") or {}
        for table, requests in params["RequestItems"].items():
            self._request("BatchWriteItem", table)
            for request in requests:
                if failed or request in unprocessed.get(table, []):
                    continue
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    self._write("BatchWriteItem", table, item, item)
                else:
                    self._write("BatchWriteItem", table, None, request["DeleteRequest"]["Key"])

    def _on_TransactWriteItems(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        for entry in params["TransactItems"]:
            ((kind, action),) = entry.items()
            table = action["TableName"]
            self._request("TransactWriteItems", table)
            if kind == "Put":
                self._write("TransactWriteItems", table, action["Item"], action["Item"], transactional=True,
                            failed=failed)  # fmt: skip
            elif kind == "Delete":
                self._write("TransactWriteItems", table, None, action["Key"], transactional=True, failed=failed)
            else:  # a ConditionCheck or an Update: billed as a transactional write of the item as it is
                stored = self._stored(table, action["Key"]) or action["Key"]
                self._write("TransactWriteItems", table, stored, action["Key"], transactional=True, failed=True)

    def _on_GetItem(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        self._request("GetItem", params["TableName"])
        self._read("GetItem", params["TableName"], params["Key"], bool(params.get("ConsistentRead")))

    def _on_BatchGetItem(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        unprocessed = parsed.get("UnprocessedKeys") or {}
        for table, request in params["RequestItems"].items():
            self._request("BatchGetItem", table)
            left = unprocessed.get(table, {}).get("Keys", [])
            for key in request["Keys"]:
                if not failed and key not in left:
                    self._read("BatchGetItem", table, key, bool(request.get("ConsistentRead")))

    def _on_Query(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        self._on_read_page("Query", params, parsed)

    def _on_Scan(self, params: dict[str, Any], parsed: dict[str, Any], failed: bool) -> None:
        self._on_read_page("Scan", params, parsed)

    def _on_read_page(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        """A page of a Query or Scan: the sizes of the items read (whole items, or index entries), rounded once."""
        table = params["TableName"]
        self._request(operation, table)
        if table not in self.shapes:
            return
        index = next((i for i in self.shapes[table].indexes if i[0] == params.get("IndexName")), None)
        total = 0
        keys = self.shapes[table].keys
        for found in parsed.get("Items", []):
            # An item returned without its keys (a projection left them out) is billed as returned: an underestimate.
            stored = (self._stored(table, found) if all(k in found for k in keys) else None) or found
            if index is None:
                total += item_size(stored)
            else:
                total += item_size(self._index_entry(index, self.shapes[table].keys, stored)) + INDEX_ENTRY_OVERHEAD
        self._add(operation, table, reads=read_units(total, consistent=bool(params.get("ConsistentRead"))))

    # storage ---------------------------------------------------------------------------------------------
    def stored_bytes(self) -> dict[str, int]:
        """Bytes billed for storage per table and index: items plus 100 bytes each, index entries likewise."""
        stored: dict[str, int] = {}
        for table, items in self.items.items():
            shape = self.shapes[table]
            stored[table] = sum(item_size(i) + INDEX_ENTRY_OVERHEAD for i in items.values())
            for index in shape.indexes:
                entries = [
                    self._index_entry(index, shape.keys, i) for i in items.values() if all(k in i for k in index[1])
                ]
                stored[f"{table}#{index[0]}"] = sum(item_size(e) + INDEX_ENTRY_OVERHEAD for e in entries)
        return stored


def table_shape(description: Mapping[str, Any]) -> TableShape:
    """The shape of a table from its DescribeTable answer."""
    keys = tuple(k["AttributeName"] for k in description["KeySchema"])
    indexes = tuple(
        (i["IndexName"], tuple(k["AttributeName"] for k in i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in description.get("GlobalSecondaryIndexes", [])
    )
    return TableShape(keys, indexes)


def _plain(value: Mapping[str, Any]) -> Any:
    ((kind, data),) = value.items()
    return (kind, bytes(data) if isinstance(data, bytes | bytearray) else data)
