"""Price entries in the meta table: one item per dated entry under `pk = prices`, the daily checks in one item.

Outside every view generation: a replay rebuilds the views from the events and reads the same prices.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from batchops.prices import PriceBook, PriceChecks, PriceEntry

PRICES_PK = "prices"
CHECKS_KEY = {"pk": {"S": "prices-checked"}, "sk": {"S": "latest"}}
_BATCH = 25
"""BatchWriteItem's limit."""


def _sort_key(price: PriceEntry) -> str:
    return f"{price.kind}#{price.location}#{price.item}#{price.as_of}"


class DynamoDBPriceStore:
    """`prices.PriceStore` in the `<prefix>-meta` table."""

    def __init__(self, client: Any, meta_table: str) -> None:
        self.client = client
        self.table = meta_table

    def _items(self) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": PRICES_PK}},
        }
        while True:
            page = self.client.query(**request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def price_entries(self) -> list[PriceEntry]:
        """Every stored entry, by key and day."""
        return [PriceEntry.from_dict(json.loads(item["price"]["S"])) for item in self._items()]

    def save_price_entries(self, entries: Iterable[PriceEntry]) -> int:
        """Put the entries in batches of 25, retrying what DynamoDB leaves unprocessed."""
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": {"S": PRICES_PK},
                        "sk": {"S": _sort_key(e)},
                        "price": {"S": json.dumps(e.to_dict(), sort_keys=True)},
                    }
                }
            }
            for e in {_sort_key(e): e for e in entries}.values()  # a batch refuses two puts of one key
        ]
        for start in range(0, len(requests), _BATCH):
            pending: dict[str, Any] = {self.table: requests[start : start + _BATCH]}
            for attempt in range(8):
                left = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems", {})
                if not left:
                    break
                pending = left
                time.sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise RuntimeError(f"DynamoDB left {len(pending[self.table])} price items unwritten")
        return len(requests)

    def price_checks(self) -> PriceChecks | None:
        """The last refresh day's checks."""
        item = self.client.get_item(TableName=self.table, Key=CHECKS_KEY, ConsistentRead=True).get("Item")
        if item is None:
            return None
        return PriceChecks(item["day"]["S"], frozenset(json.loads(item["keys"]["S"])))

    def save_price_checks(self, checks: PriceChecks) -> None:
        """Replace the checks (one item: some thousands of keys stay far under DynamoDB's 400 KB)."""
        item = {**CHECKS_KEY, "day": {"S": checks.day}, "keys": {"S": json.dumps(sorted(checks.keys))}}
        self.client.put_item(TableName=self.table, Item=item)


PRICES_MAX_AGE_SECONDS = 3600
"""How long a container costs rows with the prices it read (the prices function refreshes them daily)."""


class HourlyPriceBook:
    """The stored prices of a meta table, read again once they are an hour old: what a long-lived container costs
    with (the exporter and the projector's `JobCost` metric)."""

    def __init__(self, client: Any, meta_table: str, max_age_seconds: float = PRICES_MAX_AGE_SECONDS) -> None:
        self.store = DynamoDBPriceStore(client, meta_table)
        self.max_age_seconds = max_age_seconds
        self._book: PriceBook | None = None
        self._read_at = 0.0

    def __call__(self) -> PriceBook:
        """The price book, read now if never read or older than `max_age_seconds`."""
        if self._book is None or time.monotonic() - self._read_at > self.max_age_seconds:
            self._book, self._read_at = PriceBook(self.store.price_entries()), time.monotonic()
        return self._book
