"""One projection unit of work on the DynamoDB view store: strongly consistent reads, conditional writes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from botocore.exceptions import ClientError

from batchops.adapters.dynamodb.items import (
    ConcurrentViewUpdate,
    _batch_get,
    _now,
    _pack,
    _unpack_fold,
    _without_seen,
    ensure_view_tables,
    from_item,
    to_item,
)
from batchops.adapters.dynamodb.job_items import (
    JOB_COLUMNS,
    PACKED,
    job_fold_of_item,
    job_row_and_fold,
    pack_job,
    stored_job_row,
)
from batchops.adapters.dynamodb.tables import MAX_ITEM_BYTES, item_size
from batchops.compute_environments import compute_environment_key
from batchops.instances import instance_key
from batchops.projection import (
    TIME_FIELDS,
    InstanceFacts,
    attempts_of,
    instance_row,
    instance_spot_signal,
    job_row,
    timeline_rows,
)
from batchops.times import parse_instant
from batchops.views import RejectedEvent

if TYPE_CHECKING:
    from batchops.adapters.dynamodb.views import DynamoDBViewStore


class DynamoDBSession:
    """One projection unit of work on DynamoDB; reads are strongly consistent, writes conditional."""

    def __init__(self, store: DynamoDBViewStore, generation: int) -> None:
        self.store = store
        self.client = store.client
        self.g = generation
        self._revisions: dict[str, int] = {}
        self._pending_jobs: dict[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = {}
        self._instances: dict[str, dict[str, Any] | None] = {}  # instance items written or read in this phase
        self._container_instances: dict[str, str | None] = {}  # container-instance edges written or read
        self._environments: dict[UUID, tuple[dict[str, Any] | None, bool, str | None]] = {}
        self._written_instances: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # pk → (fold, row)
        # Job items read ahead by `prefetch_jobs` (pk → (revision, fold) or None): each used once, by the
        # first `job_fold` of its job, as the GetItem it replaces would have been.
        self._prefetched_jobs: dict[str, tuple[int, Any] | None] = {}
        # Items as last read or written (revision key → low-level item): a write that would change nothing is skipped.
        self._stored: dict[str, dict[str, Any]] = {}
        self.kept_aside: list[RejectedEvent] = []  # items that would not fit DynamoDB's 400 KB even trimmed

    def _pk(self, key: UUID | str) -> str:
        return f"{self.g}#{key}"

    def _get(self, table: str, pk: str, sk: str | None = None) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}} if sk is None else {"pk": {"S": pk}, "sk": {"S": sk}}
        if sk is None:
            self._prefetched_jobs.pop(pk, None)  # read again here: a revision and its values come from one read
        item = self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        revision_key = pk if sk is None else f"{pk}|{sk}"
        if not item:
            self._revisions.setdefault(revision_key, 0)
            return None
        self._stored[revision_key] = item
        values = from_item(item)
        self._revisions.setdefault(revision_key, int(values.get("rev", 0)))
        return values

    def _put(self, table: str, pk: str, values: dict[str, Any], sk: str | None = None) -> None:
        """Write an item only if it is still at the revision this session read (or still absent)."""
        revision_key = pk if sk is None else f"{pk}|{sk}"
        revision = self._revisions.get(revision_key)
        if revision is None:
            self._get(table, pk, sk)
            revision = self._revisions[revision_key]
        key = {"pk": pk} if sk is None else {"pk": pk, "sk": sk}
        item = to_item({**values, **key, "rev": revision + 1, "gen": self.g})
        fitted = self._fit(table, revision_key, item)
        if fitted is None:
            return
        item = fitted
        if _unchanged(self._stored.get(revision_key), item):
            return  # already stored as it would be written: a put would bill a write (and a stream record) for nothing
        condition = "attribute_not_exists(pk)" if revision == 0 else "rev = :rev"
        request: dict[str, Any] = {"TableName": table, "Item": item, "ConditionExpression": condition}
        if revision:
            request["ExpressionAttributeValues"] = {":rev": {"N": str(revision)}}
        try:
            self.client.put_item(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentViewUpdate(f"{table} item {revision_key} changed since it was read") from error
            raise
        self._revisions[revision_key] = revision + 1
        self._stored[revision_key] = item

    def _fit(self, table: str, key: str, item: dict[str, Any]) -> dict[str, Any] | None:
        """The item as written: whole when DynamoDB takes it (400 KB by its rules, `item_size`); else without its
        fold's fingerprints (`seen`: what the aggregate needs to recognise a redelivery, never read by the views,
        whose folds give the same rows with or without it); else None, and the item is kept aside with its
        reason (`batchops rejected`), the rest of the batch written. See docs/dynamodb-capacity.md."""
        size = item_size(item)
        if size <= MAX_ITEM_BYTES:
            return item
        trimmed = _without_seen(item)
        if trimmed is not None and item_size(trimmed) <= MAX_ITEM_BYTES:
            return trimmed
        names = ("account_id", "region", "job_id", "instance_id", "name")
        plain = from_item({k: item[k] for k in (*names, PACKED) if k in item})
        if PACKED in plain:  # a job item: its names are packed with its row
            plain = stored_job_row(plain)
        values = {k: plain[k] for k in names if plain.get(k) is not None}
        self.kept_aside.append(
            RejectedEvent(
                reason=(
                    f"view item too large: the {table} item {key} would be {size:,} bytes, over DynamoDB's "
                    f"{MAX_ITEM_BYTES:,}; not written (its events are in the event store)"
                ),
                rejected=True,
                detail_type=None,
                account_id=values.get("account_id"),
                region=values.get("region"),
                body=orjson.dumps({"table": table, "key": key, "bytes": size, **values}).decode(),
                received_at=_now(),
            )
        )
        return None

    def _put_meta(self, pk: str, sk: str, values: dict[str, Any] | None = None) -> None:
        self.client.put_item(TableName=self.store.meta_table, Item=to_item({**(values or {}), "pk": pk, "sk": sk}))

    def _put_meta_items(self, items: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Unconditional meta items (join edges) in BatchWriteItem requests of up to 25: the same puts as one
        PutItem each (a batch write is not atomic either), in fewer round trips; unprocessed items are sent again."""
        requests = [
            {"PutRequest": {"Item": to_item({**values, "pk": pk, "sk": sk})}} for (pk, sk), values in items.items()
        ]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.store.meta_table: requests[start : start + 25]}
            for attempt in range(10):
                unprocessed = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not unprocessed:
                    break
                pending = unprocessed
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"{self.store.meta_table}: edge items still unprocessed after 10 batch writes")

    # folds -----------------------------------------------------------------------------------------------
    def prefetch(self, events: Iterable[Any], known: Mapping[UUID, Any] | None = None) -> None:
        """Read ahead, in BatchGetItem requests, what projecting these events will look up one item at a time: the
        stored folds of their jobs, then their instances and compute environments and the joins of those jobs'
        rows (container-instance edges, the instances behind them, compute environments). Not the aggregates whose
        folds are `known` (given to the projector).

        Performance only, at the start of the session, before anything is written: the same strongly consistent
        reads, a little earlier in the same phase, recorded as `_get` records them (a revision and the values it
        goes with, from one read). Writes stay conditional on those revisions, and `flush` still reads every join
        again after the session's writes; a lookup not foreseen here still reads its item itself."""
        from batchops.compute_environments import ComputeEnvironment
        from batchops.instances import Instance
        from batchops.jobs import Job

        known = known or {}
        jobs: list[UUID] = []
        instances: list[str] = []
        environments: list[UUID] = []
        for event in events:
            key = event.originator_id
            if key in known:
                continue
            if isinstance(event, (Job.Tracked, Job.StateObserved, Job.TaskObserved)):
                jobs.append(key)
            elif isinstance(event, (Instance.Tracked, Instance.Observed)):
                instances.append(self._pk(key))
            elif isinstance(event, (ComputeEnvironment.Tracked, ComputeEnvironment.Configured)):
                environments.append(key)
        self.prefetch_jobs(jobs)
        rows: list[dict[str, Any]] = [
            {"account_id": None, "region": None, "compute_environment": None, "environment_key": key}
            for key in environments
        ]
        for prefetched in list(self._prefetched_jobs.values()):
            if prefetched is not None:
                rows.extend(_JoinRecorder.rows_of(prefetched[1]))
        self._read_joins(rows, instance_pks=instances)
        behind = [self._pk(UUID(i)) for i in self._container_instances.values() if i]
        self._read_joins([], instance_pks=behind)

    def prefetch_jobs(self, keys: Iterable[UUID]) -> None:
        """Read the stored folds and revisions of these jobs in BatchGetItem requests (strongly consistent, as each
        GetItem of `job_fold`), at the start of the session, before anything is written.

        Performance only: one request per 100 jobs instead of one GetItem each. The guarantees are those of the
        reads they replace: a job's revision is taken from the same read as its fold, the first time `job_fold`
        uses it (nothing else of the session has read the item before), and every write stays conditional on that
        revision, so a job another projector wrote since is a `ConcurrentViewUpdate` and a retry on fresh state,
        as before. The whole item is fetched (a projection expression would bill the same read units): `_put` skips a
        write that would store it unchanged.
        """
        wanted = [pk for pk in dict.fromkeys(self._pk(key) for key in keys) if pk not in self._revisions]
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            request: dict[str, Any] = {
                self.store.jobs_table: {
                    "Keys": [{"pk": {"S": pk}} for pk in chunk],
                    "ConsistentRead": True,
                }
            }
            found: dict[str, tuple[int, Any]] = {}
            for _, item in _batch_get(self.client, request, "job items"):
                found[item["pk"]["S"]] = (int(item["rev"]["N"]) if "rev" in item else 0, _ready(job_fold_of_item(item)))
                self._stored[item["pk"]["S"]] = item
            for pk in chunk:
                self._prefetched_jobs[pk] = found.get(pk)

    def job_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of a job."""
        pk = self._pk(key)
        pending = self._pending_jobs.get(pk)
        if pending is not None:
            return pending[0]
        if pk in self._prefetched_jobs:
            prefetched = self._prefetched_jobs.pop(pk)
            self._revisions.setdefault(pk, prefetched[0] if prefetched else 0)
            return prefetched[1] if prefetched else None
        found = self._get(self.store.jobs_table, pk)
        return _ready(job_row_and_fold(found)[1]) if found else None

    def instance_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of an instance."""
        found = self._instance_values(key)
        return _unpack_fold(found["fold"]) if found else None

    def compute_environment(self, key: UUID) -> tuple[dict[str, Any] | None, bool, str | None]:
        """A compute environment's fold, spot signal and pricing."""
        cached = self._environments.get(key)
        if cached is not None:
            return cached
        found = self._get(self.store.meta_table, f"{self.g}#ce", str(key))
        return self._remember_environment(key, found)

    def _remember_environment(
        self, key: UUID, found: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, bool, str | None]:
        result = (
            (None, False, None)
            if found is None
            else (
                _unpack_fold(found["fold"]) if found.get("fold") else None,
                bool(found.get("spot_signal")),
                found.get("pricing"),
            )
        )
        self._environments[key] = result
        return result

    def _read_joins(self, rows: list[dict[str, Any]], instance_pks: Iterable[str] = ()) -> None:
        """Read, in BatchGetItem requests (strongly consistent, as each GetItem), what the joins of these rows will
        look up: their compute environments, container-instance edges and instances. The same reads as the lookups
        would make one by one, at the same point (after this session's writes); a lookup not foreseen here still
        reads its item itself."""
        meta: dict[tuple[str, str], Any] = {}
        instances: dict[str, Any] = {}
        for pk in instance_pks:
            if pk not in self._instances:
                instances[pk] = pk
        for row in rows:
            account, region = row["account_id"], row["region"]
            if row.get("environment_key") and row["environment_key"] not in self._environments:
                key = row["environment_key"]
                meta[(f"{self.g}#ce", str(key))] = ("ce", key)
            if row.get("compute_environment"):
                key = compute_environment_key(account, region, row["compute_environment"])
                if key not in self._environments:
                    meta[(f"{self.g}#ce", str(key))] = ("ce", key)
            ci = row.get("container_instance_arn")
            if ci and f"{account}#{region}#{ci}" not in self._container_instances:
                meta[(f"{self.g}#ci", f"{account}#{region}#{ci}")] = ("ci", f"{account}#{region}#{ci}")
            if row.get("instance_id"):
                pk = self._pk(instance_key(account, region, row["instance_id"]))
                if pk not in self._instances:
                    instances[pk] = pk
        keys = [(self.store.meta_table, {"pk": pk, "sk": sk}) for pk, sk in meta]
        keys += [(self.store.instances_table, {"pk": pk}) for pk in instances]
        found: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {}
            for table, item_key in keys[start : start + 100]:
                entry = request.setdefault(table, {"Keys": [], "ConsistentRead": True})
                entry["Keys"].append({k: {"S": v} for k, v in item_key.items()})
            for table, item in _batch_get(self.client, request, "join items"):
                values = from_item(item)
                found[(table, values["pk"], values.get("sk"))] = values
                self._stored[values["pk"] if "sk" not in values else f"{values['pk']}|{values['sk']}"] = item
        for (pk, sk), (kind, key) in meta.items():
            stored = found.get((self.store.meta_table, pk, sk))
            self._revisions.setdefault(f"{pk}|{sk}", int(stored.get("rev", 0)) if stored else 0)
            if kind == "ce":
                self._remember_environment(key, stored)
            else:
                self._container_instances[key] = stored["instance"] if stored else None
        for pk in instances:
            stored = found.get((self.store.instances_table, pk, None))
            self._revisions.setdefault(pk, int(stored.get("rev", 0)) if stored else 0)
            self._instances[pk] = stored

    # writes ----------------------------------------------------------------------------------------------
    def put_job(self, key: UUID, fold: dict[str, Any], row: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        """Queue a job write (done by `flush`, after the instance and CE writes of the same batch; early once
        `queued_rows` of the store are queued, as the projector puts jobs only after every instance and CE of the
        batch)."""
        self._pending_jobs[self._pk(key)] = (fold, row, attempts)
        if len(self._pending_jobs) >= self.store.queued_rows:
            self.flush()

    def put_instance(self, key: UUID, fold: dict[str, Any], row: dict[str, Any]) -> None:
        """Write an instance's membership and container-instance edges, then the instance."""
        pk = self._pk(key)
        edges = self._instance_edges(key, row)
        ci = row.get("container_instance_arn")
        if ci:
            self._container_instances[f"{row['account_id']}#{row['region']}#{ci}"] = str(key)
        stored = self._stored.get(pk)
        # Edges first, so that every edge of a stored item is written: those of the stored item are not written again.
        new_edges = (
            {k: v for k, v in edges.items() if k not in self._instance_edges(key, from_item(stored))}
            if stored
            else edges
        )
        if new_edges:  # before put_instance returns, as before: the projector reads the instance's jobs next
            self._put_meta_items(new_edges)
        values = {**row, "fold": _pack(fold), "spot_signal": instance_spot_signal(fold)}
        self._put(self.store.instances_table, pk, values)
        self._instances[pk] = values
        self._written_instances[pk] = (fold, row)

    def _instance_edges(self, key: UUID, row: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        """The meta items an instance row implies: its compute-environment membership, its container instance."""
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        if row.get("compute_environment"):
            ce = row["compute_environment"]
            edges[(f"{self.g}#ce-instances#{row['account_id']}#{row['region']}#{ce}", str(key))] = {}
        ci = row.get("container_instance_arn")
        if ci:
            edges[(f"{self.g}#ci", f"{row['account_id']}#{row['region']}#{ci}")] = {"instance": str(key)}
        return edges

    def put_compute_environment(
        self,
        key: UUID,
        account: str,
        region: str,
        name: str,
        fold: dict[str, Any] | None,
        spot_signal: bool,
        pricing: str | None,
    ) -> None:
        """Write a compute environment's fold, spot signal and pricing, and its membership edge."""
        self._environments[key] = (fold, spot_signal, pricing)
        self._put(
            self.store.meta_table,
            f"{self.g}#ce",
            {
                "account_id": account,
                "region": region,
                "name": name,
                "fold": _pack(fold) if fold else None,
                "spot_signal": spot_signal,
                "pricing": pricing,
            },
            sk=str(key),
        )

    def flush(self) -> None:
        """Write queued job rows with their join edges and check their joins again (`_flush_jobs`), then keep aside
        with its reason every item too large to write."""
        try:
            self._flush_jobs()
        finally:
            kept, self.kept_aside = self.kept_aside, []
            if kept:
                self.store.keep_rejected(kept)

    def _flush_jobs(self) -> None:
        """Write queued job rows with their join edges, then check their joins again.

        Write-then-read: a job and the instance or compute environment it joins may be projected at the same
        moment by two Lambdas. Each writes its item (and edges) before reading the other's, so at least one of
        them sees the other; re-reading after our own write makes sure a stale join never stays. Only the jobs that
        got an edge now are read again: through an edge stored before, the other Lambda finds the job after its own
        write and rewrites it, and the two job writes, each conditional on the revision it read, cannot both land on
        the same revision (the later one is retried on fresh reads).

        Round trips: the job items are written `job_writers` at a time (each conditional on its revision), then
        their edges in batch writes, and only then are the joins read again; within one round of reads an item or
        edge is read once and reused by every job that joins it (each of those reads still comes after all of our
        writes).
        """
        self._verify_instance_pricing()
        written = list(self._pending_jobs.items())
        joined = self._write_job_edges(written)
        self._write_jobs(written)
        self._pending_jobs.clear()
        written = [job for job in written if job[0] in joined]
        for _ in range(3):
            if not written:
                return
            self._environments.clear()
            self._instances.clear()
            self._container_instances.clear()
            self._read_joins([row for _, (_, row, _) in written])
            stale = []
            for pk, (fold, row, attempts) in written:
                fresh = job_row(fold, self, attempts)
                if fresh != row:
                    stale.append((pk, (fold, fresh, attempts)))
            if not stale:
                return
            joined = self._write_job_edges(stale)
            self._write_jobs(stale)
            written = [job for job in stale if job[0] in joined]

    def _verify_instance_pricing(self) -> None:
        """Write-then-read for the instance rows' pricing, as for the job rows' joins: an instance written with its
        compute environment's pricing while another projector changes that pricing (a spot signal) and looks for
        the environment's instances (the membership edges) must not keep the old pricing. Our instance and edge
        writes came first; reading the pricing again now, either we see the new pricing (and rewrite the row) or
        the other projector's edge query came after our edge and it rewrites the row."""
        for _ in range(3):
            self._environments.clear()
            self._read_joins(
                [
                    {**row, "container_instance_arn": None, "instance_id": None}
                    for _, row in self._written_instances.values()
                ]
            )
            stale = []
            for pk, (fold, row) in self._written_instances.items():
                ce = row.get("compute_environment")
                pricing = self.compute_environment_pricing(row["account_id"], row["region"], ce) if ce else None
                fresh = instance_row(fold, pricing)
                if fresh != row:
                    stale.append((pk, fold, fresh))
            if not stale:
                return
            for pk, fold, fresh in stale:
                self.put_instance(UUID(pk.split("#", 1)[1]), fold, fresh)

    def _write_job_edges(
        self, jobs: list[tuple[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]]
    ) -> set[str]:
        """Write the join edges of these job rows (ran-on, compute-environment membership) before the rows: every edge
        of a stored job item is then written, and the edges its stored item already implies are not written again.
        The keys of the jobs that got an edge."""
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        joined: set[str] = set()
        for pk, (_, row, attempts) in jobs:
            job = pk.split("#", 1)[1]
            stored = self._stored.get(pk)
            known = self._stored_job_edges(job, stored) if stored else {}
            new = {k: v for k, v in self._job_edges(job, row, attempts).items() if k not in known}
            if new:
                joined.add(pk)
                edges.update(new)
        if edges:
            self._put_meta_items(edges)
        return joined

    def _stored_job_edges(self, job: str, item: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        row, fold = job_row_and_fold(from_item(item))
        return self._job_edges(job, row, attempts_of(fold) if fold else [])

    def _job_edges(
        self, job: str, row: Mapping[str, Any], attempts: list[dict[str, Any]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The meta items a job row implies: an edge from each instance and container instance an attempt ran on
        (the last attempt's instance from the row's join), and its compute-environment membership."""
        account, region = row["account_id"], row["region"]
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        for attempt in attempts:
            for target in (
                attempt.get("container_instance_arn"),
                row["instance_id"] if attempt["attempt"] == row["attempts"] else None,
            ):
                if target:
                    edges[(f"{self.g}#ran-on#{account}#{region}#{target}", f"{job}#{attempt['attempt']}")] = {}
        if row["compute_environment"]:
            edges[(f"{self.g}#ce-jobs#{account}#{region}#{row['compute_environment']}", job)] = {}
        return edges

    def _write_jobs(self, jobs: list[tuple[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]]) -> None:
        """Write job items, `job_writers` at a time: distinct items, each conditional on its own revision, so their
        order does not matter (boto3 clients are thread-safe; each write touches only its own entries of the
        session's dictionaries). Every write is attempted; the first error is raised once all have ended, and the
        session's retry reads again whatever the failed ones left."""
        if len(jobs) <= 1 or self.store.job_writers <= 1:
            for pk, (fold, row, attempts) in jobs:
                self._write_job(pk, fold, row, attempts)
            return
        with ThreadPoolExecutor(
            max_workers=min(self.store.job_writers, len(jobs)), thread_name_prefix="batchops-jobs"
        ) as pool:
            futures = [pool.submit(self._write_job, pk, fold, row, attempts) for pk, (fold, row, attempts) in jobs]
        for future in futures:
            future.result()

    def _write_job(self, pk: str, fold: dict[str, Any], row: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        account, region = row["account_id"], row["region"]
        timeline = timeline_rows(fold)
        values: dict[str, Any] = {
            "job": pack_job({c: row[c] for c in JOB_COLUMNS}, fold),
            "by_queue": f"{self.g}#{account}#{region}#{row['queue']}",
            "by_status": f"{self.g}#{account}#{row['status']}",
            "status_since": max(
                (t["event_time"] for t in timeline if t["status"] == row["status"]), default=row["last_event_time"]
            ),
            "by_job_id": f"{self.g}#{row['job_id']}",
            "created_at": row["created_at"],
            "by_instance": f"{self.g}#{account}#{region}#{row['instance_id']}" if row["instance_id"] else None,
        }
        if row["status"] in ("SUCCEEDED", "FAILED") and row["last_event_time"]:
            values["expires_at"] = parse_instant(row["last_event_time"]) // 1000 + self.store.retention_days * 86400
        self._put(self.store.jobs_table, pk, values)

    # joins -----------------------------------------------------------------------------------------------
    def _instance_values(self, key: UUID) -> dict[str, Any] | None:
        """An instance item as written or (consistently) read in this phase of the session: read once per phase."""
        pk = self._pk(key)
        if pk not in self._instances:
            self._instances[pk] = self._get(self.store.instances_table, pk)
        return self._instances[pk]

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        """The instance behind a container instance (consistent read of the edge item, once per phase)."""
        edge_key = f"{account}#{region}#{arn}"
        if edge_key not in self._container_instances:
            edge = self.store.meta_item(f"{self.g}#ci", edge_key)
            self._container_instances[edge_key] = edge["instance"] if edge else None
        instance = self._container_instances[edge_key]
        return None if instance is None else _facts(self._instance_values(UUID(instance)))

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        """An instance by its EC2 id."""
        return _facts(self._instance_values(instance_key(account, region, instance_id)))

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        """A compute environment's pricing as last written."""
        return self.compute_environment(compute_environment_key(account, region, name))[2]

    def jobs_on_instance(
        self, account: str, region: str, instance_id: str, container_instance_arn: str | None
    ) -> list[UUID]:
        """Jobs that ran on the instance (from the ran-on edges)."""
        found: set[UUID] = set()
        for target in (instance_id, container_instance_arn):
            if target:
                for item in self.store._query_meta(f"{self.g}#ran-on#{account}#{region}#{target}"):
                    found.add(UUID(item["sk"]["S"].split("#", 1)[0]))
        return sorted(found)

    def jobs_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Jobs that ran in the compute environment."""
        return [UUID(i["sk"]["S"]) for i in self.store._query_meta(f"{self.g}#ce-jobs#{account}#{region}#{name}")]

    def instances_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Instances registered in the compute environment (from the membership edges)."""
        return [UUID(i["sk"]["S"]) for i in self.store._query_meta(f"{self.g}#ce-instances#{account}#{region}#{name}")]

    def track(self, notification_id: int) -> None:
        """Stream-fed views keep no notification position."""


class _JoinRecorder:
    """The Joins of `job_row` answering nothing, noting what a job's row would look up (for `prefetch`)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def rows_of(cls, fold: dict[str, Any]) -> list[dict[str, Any]]:
        recorder = cls()
        job_row(fold, recorder)
        return recorder.rows

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        self.rows.append({"account_id": account, "region": region, "container_instance_arn": arn})
        return None

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        self.rows.append({"account_id": account, "region": region, "instance_id": instance_id})
        return None

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        self.rows.append({"account_id": account, "region": region, "compute_environment": name})
        return None


def _ready(fold: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored job fold, ready to fold more events into (`seen` is left out of an item that would not fit whole)."""
    if fold is not None:
        fold.setdefault("seen", {})
    return fold


def _unchanged(stored: dict[str, Any] | None, item: dict[str, Any]) -> bool:
    """Whether an item would be written as it is stored (its revision aside)."""
    if stored is None or len(stored) != len(item):
        return False
    return all(stored.get(name) == value for name, value in item.items() if name != "rev")


def _facts(values: dict[str, Any] | None) -> InstanceFacts | None:
    if values is None:
        return None
    return InstanceFacts(
        instance_id=values["instance_id"],
        instance_type=values.get("instance_type"),
        availability_zone=values.get("availability_zone"),
        compute_environment=values.get("compute_environment"),
        spot_signal=bool(values.get("spot_signal")),
        spot_interrupted=bool(values.get("spot_interrupted")),
    )


__all__ = ["TIME_FIELDS", "ConcurrentViewUpdate", "DynamoDBViewStore", "ensure_view_tables", "time"]
