"""Every query of the metadata database. Callers pass a ``Session``; nothing else writes SQL.

One module per aggregate, all re-exported here so callers write ``repo.claim_runs(…)``:

* ``triggers`` — triggers, the schedule cursor, names/SLAs read for runs;
* ``runs`` — pipeline runs: create (ad hoc, by idempotency key, by schedule date), read,
  count, retry, cancel, the SLA flag;
* ``queue`` — claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
  SQLite), heartbeat, recover, finish, hand back;
* ``limits`` — the claim's concurrency arithmetic, pure (no database);
* ``block_runs``, ``backfills``, ``secrets``, ``audits``, ``workers``, ``retention``.

Schedule and backfill runs are inserted with ``ON CONFLICT DO NOTHING`` on their unique
(trigger|backfill, schedule_date) key. Queries are SQLAlchemy 2 style (``select``,
``update``, ``delete``, dialect ``insert``); the same code runs on SQLite and PostgreSQL,
and ``tests/unit/orchestration/test_store_contract.py`` runs on both.
"""

from __future__ import annotations

from dagsmith.orchestration.store.repo._common import BLOCK_DONE, QUEUE_CHANNEL, Conflict, NotFound, announce_queued, new_token
from dagsmith.orchestration.store.repo.audits import audit, list_audit
from dagsmith.orchestration.store.repo.backfills import (
    backfill_progress,
    cancel_backfill_runs,
    create_backfill,
    get_backfill,
    list_backfills,
)
from dagsmith.orchestration.store.repo.block_runs import (
    completed_blocks,
    ensure_block_runs,
    ensure_rows,
    get_block_run,
    insert_missing_block_runs,
    list_block_runs,
    update_block_run,
    upsert_block_runs,
)
from dagsmith.orchestration.store.repo.queue import (
    CLAIM_LOCK_KEY,
    claim_runs,
    finish_run,
    heartbeat_runs,
    recover_dead_local_runs,
    recover_stale_runs,
    release_run,
)
from dagsmith.orchestration.store.repo.retention import (
    delete_runs,
    expired_runs,
    mark_logs_purged,
    runs_with_expired_logs,
    unfinished_partitions,
)
from dagsmith.orchestration.store.repo.runs import (
    count_runs,
    create_keyed_run,
    create_run,
    find_keyed_run,
    get_run,
    has_unfinished_run,
    insert_keyed_runs,
    list_runs,
    mark_passed_sla,
    request_cancel,
    retry_run,
    set_execution_date,
    unfinished_counts,
)
from dagsmith.orchestration.store.repo.secrets import delete_secret, get_secret_row, list_secrets, put_secret, secret_ciphertexts
from dagsmith.orchestration.store.repo.triggers import (
    TRIGGER_FIELDS,
    active_schedule_triggers,
    advance_cursor,
    advance_cursors,
    create_trigger,
    delete_trigger,
    find_trigger,
    get_trigger,
    list_triggers,
    trigger_names,
    trigger_row,
    update_trigger,
)
from dagsmith.orchestration.store.repo.workers import (
    live_workers,
    prune_workers,
    register_worker,
    remove_worker,
    worker_heartbeat,
)

__all__ = [
    "BLOCK_DONE", "CLAIM_LOCK_KEY", "Conflict", "NotFound", "QUEUE_CHANNEL", "TRIGGER_FIELDS",
    "active_schedule_triggers", "announce_queued", "advance_cursor", "advance_cursors", "audit", "backfill_progress",
    "cancel_backfill_runs", "claim_runs", "completed_blocks", "count_runs", "create_backfill",
    "create_keyed_run", "create_run", "create_trigger", "delete_runs", "delete_secret", "delete_trigger",
    "ensure_block_runs", "ensure_rows", "expired_runs", "find_keyed_run", "find_trigger", "finish_run", "get_backfill",
    "get_block_run", "get_run", "get_secret_row", "get_trigger", "has_unfinished_run", "heartbeat_runs",
    "insert_keyed_runs", "insert_missing_block_runs", "list_audit", "list_backfills", "list_block_runs", "list_runs", "list_secrets",
    "list_triggers", "live_workers", "mark_logs_purged", "mark_passed_sla", "new_token", "prune_workers",
    "put_secret", "recover_dead_local_runs", "recover_stale_runs", "register_worker", "release_run",
    "remove_worker", "request_cancel", "retry_run", "runs_with_expired_logs", "secret_ciphertexts", "set_execution_date",
    "trigger_names", "trigger_row", "unfinished_counts", "unfinished_partitions", "update_block_run", "update_trigger",
    "upsert_block_runs", "worker_heartbeat",
]
