"""Run ``dagsmith`` with counters the throughput benchmark reads: SQL statements and commits.

The benchmark starts each ``dagsmith start`` process through this launcher when it is
given ``--count``::

    python benchmarks/_instrumented.py <counts.json> dagsmith-args…

Every SQL statement any engine of the process executes is counted (SQLAlchemy's
``before_cursor_execute`` on the ``Engine`` class, so every engine is seen), keyed by its
first words, and so is every commit and every connection checkout from a pool. ``SIGUSR1``
writes the counts so far to ``<counts.json>`` (the benchmark asks before and after each
load and prints the difference per run); nothing of the product is changed.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from collections import Counter


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["dagsmith", *sys.argv[2:]]
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    words = re.compile(r"\s+")

    def key(statement: str) -> str:
        text = words.sub(" ", statement.strip())
        head = text[:48]
        for marker in (" FROM ", " INTO ", "UPDATE "):  # name the table
            at = text.find(marker)
            if at >= 0:
                table = text[at + len(marker):].split(" ", 1)[0]
                head = text.split(" ", 1)[0] + " " + table
                break
        return head

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        with lock:
            counts["sql " + key(statement)] += 1
            counts["statements"] += 1

    @event.listens_for(Engine, "commit")
    def _commit(conn):  # noqa: ANN001
        with lock:
            counts["commits"] += 1

    @event.listens_for(Pool, "checkout")
    def _checkout(dbapi_conn, record, proxy):  # noqa: ANN001
        with lock:
            counts["pool checkouts"] += 1

    def dump(*_args) -> None:
        with lock:
            snapshot = dict(counts)
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(snapshot, handle)

    signal.signal(signal.SIGUSR1, dump)
    from dagsmith.cli.front import main as cli

    cli()


if __name__ == "__main__":
    main()
