"""Copying an installation's database into another one: `nashra db migrate`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from storage.schema import (
    SCHEMA_VERSION,
    fill_dedupe_bands,
    insert_or,
    metadata,
    migrate,
    schema_version,
)
from storage.store import Storage, StorageError, create_engine

CHUNK = 1000  # rows per transaction: progress to show, and memory bounded on any table

Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in all)


def copy_database(source_url: str, target_url: str, progress: Progress | None = None
                  ) -> dict[str, int]:
    """Copy every table of `source_url` into `target_url`; the rows of each table.

    Rows are upserted by primary key, so running it again (after an interruption, say)
    neither fails nor duplicates. The source is upgraded to this version first, as any
    command opening it would; the target must be new or at the same version.
    """
    parsed = sa.make_url(source_url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise StorageError(f"no database at {parsed.database}: give --from the file's URL, "
                           "e.g. sqlite:///var/nashra.db")
    source = Storage(source_url)
    target = create_engine(target_url)
    try:
        _check_target(target)
        migrate(target)
        copied = {table.name: _copy_table(source.engine, target, table, progress)
                  for table in metadata.sorted_tables}
        with target.begin() as conn:
            fill_dedupe_bands(conn)
        return copied
    finally:
        source.close()
        target.dispose()


def _check_target(target: sa.Engine) -> None:
    shown = target.url.render_as_string(hide_password=True)
    try:
        with target.connect() as conn:
            found = schema_version(conn)
    except sa.exc.OperationalError as exc:
        raise StorageError(f"cannot open {shown}: {exc.orig}") from None
    if found not in (0, SCHEMA_VERSION):
        raise StorageError(f"{shown} has schema version {found}, this Nashra writes "
                           f"{SCHEMA_VERSION}: migrate into an empty database, or upgrade it "
                           "by opening it with the Nashra that matches it first")


def _copy_table(source: sa.Engine, target: sa.Engine, table: sa.Table,
                progress: Progress | None) -> int:
    """Copy `table` in chunks, each its own transaction, in primary key order."""
    query = sa.select(table).order_by(*table.primary_key.columns)
    with source.connect() as read:
        total = read.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        done = 0
        for rows in read.execution_options(yield_per=CHUNK).execute(query).partitions():
            with target.begin() as write:
                write.execute(insert_or(write, table, update=True), [r._asdict() for r in rows])
            done += len(rows)
            if progress:
                progress(table.name, done, total)
    return total
