"""The tables, and the ordered migrations that upgrade older databases to them.

A new database gets the current tables at once and is stamped with SCHEMA_VERSION (as
Alembic recommends); an older one runs each later entry of UPGRADES in its own
transaction. A schema change edits the tables below and appends one upgrade, written with
Alembic's operations so the same DDL runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from feeds.dedupe import buckets

metadata = sa.MetaData()
# Tables derived from the others, or empty at rest: created beside them, never copied.
derived = sa.MetaData()


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


def _source_state_columns() -> list[sa.Column]:
    """Columns added in version 2: what a feed source is and where its polling stands."""
    return [
        sa.Column("title", sa.Text),
        sa.Column("language", sa.String(35)),
        sa.Column("topics", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("full_text", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("min_interval", sa.Integer, nullable=False, server_default="900"),
        sa.Column("max_interval", sa.Integer, nullable=False, server_default="86400"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("origin", sa.String(10), nullable=False, server_default="cli"),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("last_fetch", UTCDateTime),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_poll", UTCDateTime),
        sa.Column("interval", sa.Float),
        sa.Column("item_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bozo", sa.Text),
    ]


def _article_extra_columns() -> list[sa.Column]:
    """Columns added in version 2: what feed entries carry beyond seeds."""
    return [
        sa.Column("categories", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("enclosures", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("date_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    ]


def _dedupe_columns() -> list[sa.Column]:
    """Columns added in version 4: an article's dedupe keys and its cluster."""
    return [
        sa.Column("canonical_url", sa.Text),
        sa.Column("text_fingerprint", sa.String(32)),
        sa.Column("signature", sa.LargeBinary),
        sa.Column("duplicate_of", sa.String(36)),  # the cluster's canonical article
        sa.Column("dedupe_layer", sa.String(10)),
        sa.Column("dedupe_similarity", sa.Float),
        sa.Column("dedupe_containment", sa.Float),
    ]


def _dedupe_indexes() -> list[tuple[str, str, list[str]]]:
    return [("ix_articles_duplicate_of", "articles", ["duplicate_of"]),
            ("ix_articles_published", "articles", ["published"])]


sources = sa.Table(
    "sources", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("created", UTCDateTime, nullable=False),
    *_source_state_columns(),
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
    *_article_extra_columns(),
    *_dedupe_columns(),
    sa.UniqueConstraint("source", "key", name="uq_articles_source_key"),
)

_TOPIC_ORDER = ("topic", "published", "article_id")  # version 10 added article_id

article_topics = sa.Table(
    "article_topics", metadata,
    sa.Column("article_id", sa.String(36), sa.ForeignKey("articles.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("published", UTCDateTime, nullable=False),
    # The article's own topic, or (when set) one its cluster has through this duplicate.
    sa.Column("via", sa.String(36)),
    # With article_id, a topic's newest ids and unarchived stories come from the index alone.
    sa.Index("ix_article_topics_topic_published", *_TOPIC_ORDER),
)

for _name, _table, _columns in _dedupe_indexes():
    sa.Index(_name, *(metadata.tables[_table].c[c] for c in _columns))

documents = sa.Table(
    "documents", metadata,
    sa.Column("path", sa.String(300), primary_key=True),
    sa.Column("media_type", sa.String(100), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("etag", sa.String(80), nullable=False),
    sa.Column("last_modified", UTCDateTime, nullable=False),
    sa.Column("built_from", sa.String(64), nullable=False),
    sa.Column("max_age", sa.Integer, nullable=False, server_default="60"),  # version 5
)


def _partner_columns() -> list[sa.Column]:
    """The partners table, added in version 5: who may pull which topic feeds, and how."""
    return [
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("full_content", sa.Boolean, nullable=False),
        sa.Column("item_limit", sa.Integer, nullable=False),
        sa.Column("utm_source", sa.Text),
        sa.Column("rate", sa.Integer, nullable=False),
    ]


partners = sa.Table("partners", metadata, *_partner_columns())


def _partner_usage_columns() -> list[sa.Column]:
    """Added in version 8: each partner's pulls and rate-limit bucket, in storage so every
    server process shares them (each kept its own: N workers let a partner pull N times
    its rate, and /status showed one worker's counts)."""
    return [
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("rate", sa.Integer, nullable=False),  # the rate the bucket was filled at
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("refilled", sa.Float, nullable=False),  # seconds since the epoch
        sa.Column("pulls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("limited", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_pull", UTCDateTime),
    ]


partner_usage = sa.Table("partner_usage", metadata, *_partner_usage_columns())


def _archived_columns() -> list[sa.Column]:
    """Added in version 5: which stories each topic's frozen archive pages hold."""
    return [
        sa.Column("topic", sa.String(64), primary_key=True),
        sa.Column("article_id", sa.String(36), primary_key=True),
        sa.Column("page", sa.Integer, nullable=False),
    ]


archived = sa.Table("archived", metadata, *_archived_columns(),
                    sa.Index("ix_archived_topic_page", "topic", "page"))  # version 10


def _story_key_columns() -> list[sa.Column]:
    """Added in version 6: which article first claimed each canonical URL and text.

    Its primary key is how the database itself keeps one story per URL and per text when
    several processes store copies at once (see Storage._claim_keys). A separate table,
    not unique indexes on `articles`: duplicates, split articles and edits share keys.
    """
    return [
        sa.Column("kind", sa.String(4), primary_key=True),  # "url" or "text"
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("article_id", sa.String(36), nullable=False),
    ]


story_keys = sa.Table("story_keys", metadata, *_story_key_columns())


def story_key_rows(article_id: str, url: str | None, fingerprint: str | None) -> list[dict]:
    """The story_keys an article claims; a URL is hashed, as URLs have no length limit."""
    rows = []
    if url:
        rows.append({"kind": "url", "value": hashlib.sha256(url.encode()).hexdigest(),
                     "article_id": article_id})
    if fingerprint:
        rows.append({"kind": "text", "value": fingerprint, "article_id": article_id})
    return rows


def _dedupe_band_tables() -> list[sa.Table]:
    """Added in version 7: the near-duplicate index of a shared database (`is_shared`).

    `dedupe_bands` holds the LSH band keys of each article's signature (feeds.dedupe.buckets:
    the band is salted into the key), found by key and expired by publication time.
    `dedupe_locks` is empty at rest: a save inserts its keys there and deletes them before
    committing, so a concurrent save of a near copy waits for it (Storage._lock_buckets).
    On SQLite, one process's, both stay empty: the index is in memory (feeds.clusters).
    """
    return [
        sa.Table("dedupe_bands", derived,
                 sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
                 sa.Column("article_id", sa.String(36), primary_key=True),
                 sa.Column("published", UTCDateTime, nullable=False),
                 sa.Index("ix_dedupe_bands_published", "published"),
                 sqlite_with_rowid=False),
        sa.Table("dedupe_locks", derived,
                 sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False)),
    ]


dedupe_bands, dedupe_locks = _dedupe_band_tables()

# Added in version 9: the topics whose feeds the workers asked to rebuild, and when
# (feeds.tasks.Rebuilds). The first request for a topic sets the time; until the rebuild
# takes the row, later ones find it and add nothing, so a topic changed by any number of
# workers is built once. Requests are not copied: a new scheduler asks for every topic.
pending_rebuilds = sa.Table(
    "pending_rebuilds", derived,
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("due", UTCDateTime, nullable=False),
)


def is_shared(bind: Connection | sa.Engine) -> bool:
    """Whether processes on several machines may store into this database at once."""
    return bind.dialect.name == "postgresql"


def dedupe_band_rows(article_id: str, signature: bytes, published: datetime) -> list[dict]:
    """The dedupe_bands rows of an article's signature (none for an empty text)."""
    return [{"bucket": bucket, "article_id": article_id, "published": published}
            for bucket in buckets(signature)] if signature else []


def insert_or(conn: Connection, table: sa.Table, update: bool = False):
    """INSERT that skips rows already stored (or, with `update`, overwrites them by key).

    ON CONFLICT makes it race-safe: whichever process commits first wins, the other
    neither fails nor duplicates. The one place that picks the dialect's INSERT.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    if not update:
        return statement.on_conflict_do_nothing()
    keys = [c.name for c in table.primary_key]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.c if c.name not in keys})


def _v2_feed_sources(op: Operations) -> None:
    for column in _source_state_columns():
        op.add_column("sources", column)
    for column in _article_extra_columns():
        op.add_column("articles", column)


def _v3_xhtml_bodies(op: Operations) -> None:
    """Stored bodies become XHTML, which publishing now wraps without re-parsing."""
    from feeds.clean import to_xhtml

    conn = op.get_bind()
    rows = conn.execute(sa.select(articles.c.id, articles.c.content_html)).all()
    for article_id, content in rows:
        conn.execute(articles.update().where(articles.c.id == article_id)
                     .values(content_html=to_xhtml(content)))


def _v4_dedupe(op: Operations) -> None:
    """Dedupe keys for every stored article; clusters form from new articles on."""
    from feeds.clusters import dedupe_keys

    for column in _dedupe_columns():
        op.add_column("articles", column)
    op.add_column("article_topics", sa.Column("via", sa.String(36)))
    for name, table, columns in _dedupe_indexes():
        op.create_index(name, table, columns)
    conn = op.get_bind()
    rows = conn.execute(sa.select(articles.c.id, articles.c.url, articles.c.title,
                                  articles.c.content_html, articles.c.summary)).all()
    for row in rows:
        keys = dedupe_keys(row.url, row.title, row.content_html, row.summary)
        conn.execute(articles.update().where(articles.c.id == row.id).values(
            canonical_url=keys.url, text_fingerprint=keys.fingerprint,
            signature=keys.signature))


def _v5_partners(op: Operations) -> None:
    """Partners, archive pages, and how long each served document may be cached."""
    op.create_table("partners", *_partner_columns())
    op.create_table("archived", *_archived_columns())
    op.add_column("documents", sa.Column("max_age", sa.Integer, nullable=False,
                                         server_default="60"))


def _v6_story_keys(op: Operations) -> None:
    """Each canonical URL and text claimed by its earliest stored article."""
    op.create_table("story_keys", *_story_key_columns())
    conn = op.get_bind()
    rows = conn.execute(sa.select(articles.c.id, articles.c.canonical_url,
                                  articles.c.text_fingerprint)
                        .order_by(articles.c.published, articles.c.id)).all()
    claims = [key for row in rows for key in story_key_rows(*row)]
    if claims:
        conn.execute(insert_or(conn, story_keys), claims)


def fill_dedupe_bands(conn: Connection) -> None:
    """The bands of every stored signature, on a shared database (after an upgrade or a
    copy: they are derived, and not copied)."""
    if not is_shared(conn):
        return
    rows = conn.execute(sa.select(articles.c.id, articles.c.signature, articles.c.published)
                        .where(articles.c.signature.is_not(None))
                        .execution_options(yield_per=1000))
    for chunk in rows.partitions():
        bands = [band for row in chunk for band in dedupe_band_rows(*row)]
        if bands:
            conn.execute(insert_or(conn, dedupe_bands), bands)


def _v7_dedupe_bands(op: Operations) -> None:
    """The near-duplicate index in the database, for workers on several machines."""
    conn = op.get_bind()
    derived.create_all(conn, tables=[dedupe_bands, dedupe_locks])
    fill_dedupe_bands(conn)


def _v8_partner_usage(op: Operations) -> None:
    """Partner pulls and rate limits, shared by all server processes."""
    op.create_table("partner_usage", *_partner_usage_columns())


def _v9_pending_rebuilds(op: Operations) -> None:
    """Feed rebuilds debounced per topic across workers."""
    pending_rebuilds.create(op.get_bind())


def _v10_publishing_indexes(op: Operations) -> None:
    """Indexes a build reads from: a topic's story ids in date order without a row read,
    and the number of its frozen archive pages without a scan of them."""
    op.drop_index("ix_article_topics_topic_published", table_name="article_topics")
    op.create_index("ix_article_topics_topic_published", "article_topics", list(_TOPIC_ORDER))
    op.create_index("ix_archived_topic_page", "archived", ["topic", "page"])


# UPGRADES[n - 2] takes a database from version n - 1 to version n.
UPGRADES: list[Callable[[Operations], None]] = [_v2_feed_sources, _v3_xhtml_bodies,
                                                 _v4_dedupe, _v5_partners, _v6_story_keys,
                                                 _v7_dedupe_bands, _v8_partner_usage,
                                                 _v9_pending_rebuilds, _v10_publishing_indexes]
SCHEMA_VERSION = len(UPGRADES) + 1


def schema_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("meta"):
        return 0
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row.value) if row else 0


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(meta.delete().where(meta.c.key == "schema_version"))
    conn.execute(meta.insert().values(key="schema_version", value=str(version)))


MIGRATION_LOCK = 0x6E617368  # "nash"


@contextmanager
def _one_migrator(engine: sa.Engine) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock meanwhile: workers starting together migrate once."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        yield


def migrate(engine: sa.Engine) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version it was at."""
    with _one_migrator(engine):
        return _migrate(engine)


def _migrate(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise RuntimeError(f"the database has schema version {found}, newer than this Nashra "
                           f"understands ({SCHEMA_VERSION}); upgrade Nashra")
    if found == 0:
        with engine.begin() as conn:
            metadata.create_all(conn)
            derived.create_all(conn)
            conn.execute(meta.insert().values(key="created",
                                              value=datetime.now(UTC).isoformat()))
            _stamp(conn, SCHEMA_VERSION)
        return found
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            UPGRADES[version - 2](Operations(MigrationContext.configure(conn)))
            _stamp(conn, version)
    return found
