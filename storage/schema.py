"""The tables, and the ordered migrations that create and upgrade them.

A schema change appends a function to MIGRATIONS; `migrate` runs the ones a database has
not seen yet, each in its own transaction, and records the new version in `meta`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on every database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give it a timezone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

sources = sa.Table(
    "sources", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("created", UTCDateTime, nullable=False),
)

articles = sa.Table(
    "articles", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("source", sa.String(200), sa.ForeignKey("sources.name"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("content_html", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("language", sa.String(35), nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("published", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("source", "key", name="uq_articles_source_key"),
)

article_topics = sa.Table(
    "article_topics", metadata,
    sa.Column("article_id", sa.String(36), sa.ForeignKey("articles.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("published", UTCDateTime, nullable=False),
    sa.Index("ix_article_topics_topic_published", "topic", "published"),
)

documents = sa.Table(
    "documents", metadata,
    sa.Column("path", sa.String(300), primary_key=True),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("etag", sa.String(80), nullable=False),
    sa.Column("last_modified", UTCDateTime, nullable=False),
    sa.Column("built_from", sa.String(64), nullable=False),
)


def _create_v1(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(meta.insert().values(key="created", value=datetime.now(UTC).isoformat()))


MIGRATIONS: list[Callable[[Connection], None]] = [_create_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("meta"):
        return 0
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row.value) if row else 0


def migrate(engine: sa.Engine) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version it was at."""
    with engine.connect() as conn:
        found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise RuntimeError(f"the database has schema version {found}, newer than this Nashra "
                           f"understands ({SCHEMA_VERSION}); upgrade Nashra")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            conn.execute(meta.delete().where(meta.c.key == "schema_version"))
            conn.execute(meta.insert().values(key="schema_version", value=str(version)))
    return found
