"""`Storage`: the one place that knows SQL. Articles, their topics, sources, built documents."""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feeds import dedupe
from feeds.model import Article, Credit, DedupeKeys, Document, Enclosure, Partner, Source
from storage.schema import (
    archived,
    article_topics,
    articles,
    dedupe_band_rows,
    dedupe_bands,
    dedupe_locks,
    documents,
    insert_or,
    is_shared,
    meta,
    migrate,
    partner_usage,
    partners,
    pending_rebuilds,
    sources,
    story_key_rows,
    story_keys,
)

_ARTICLE_COLUMNS = ("id", "source", "key", "title", "content_html", "summary", "language",
                    "url", "author", "published", "updated", "content_hash", "categories",
                    "enclosures", "date_estimated")
_SOURCE_FIELDS = tuple(f.name for f in fields(Source))
_CHUNK = 5000  # values in one IN (...): SQLite allows 32,766 parameters a statement


class StorageError(Exception):
    """The storage URL or database cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class SaveResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    topics: frozenset[str] = frozenset()  # topics whose article set changed


MMAP_BYTES = 1 << 30  # address space only: the OS pages in what is read


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the server read while an ingest writes; NORMAL sync is crash-safe in WAL mode.
    # 16 KiB pages (set on a new file only, before WAL) hold a whole article row and cut the
    # overflow chains of the feed documents: their save took a third less time in bench/.
    # Reads through a memory map skip a read() and a copy per page: a build's reads of 20
    # topics took 150 ms instead of 185.
    cursor = dbapi_connection.cursor()
    for pragma in ("page_size=16384", "journal_mode=WAL", "synchronous=NORMAL",
                   "foreign_keys=ON", "busy_timeout=10000", f"mmap_size={MMAP_BYTES}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StorageError(f"storage URL {url!r} is not a database URL; use e.g. "
                           "sqlite:///var/nashra.db") from None
    if parsed.drivername == "postgresql":  # the driver Nashra ships, not SQLAlchemy's default
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StorageError(f"storage URL {url!r} needs the {exc.name} driver; install it") from None


class Storage:
    """Articles in, articles and documents out. Every write is one transaction."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)
        try:
            migrate(self.engine)
        except sa.exc.OperationalError as exc:
            shown = self.engine.url.render_as_string(hide_password=True)
            raise StorageError(f"cannot open storage {shown}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- articles -------------------------------------------------------------------------

    def content_hashes(self, source: str) -> dict[str, str]:
        """key -> content hash of every stored article of `source`: what needs no re-reading."""
        query = sa.select(articles.c.key, articles.c.content_hash).where(
            articles.c.source == source)
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    def save_articles(self, batch: Sequence[Article], kind: str = "seeds",
                      near: NearCheck | None = None) -> SaveResult:
        """Insert new articles and update changed ones, atomically: all of `batch` or none.

        An update keeps the article's id, cluster and first publication time, and moves
        `updated` forward (to now, when the new text claims no later time); an article whose
        content hash is unchanged is left alone. `near` decides again whether a new story is
        a copy of one stored meanwhile by another process (see _claim_near).
        """
        if not batch:
            return SaveResult()
        now = datetime.now(UTC).replace(microsecond=0)
        with self.engine.begin() as conn:
            self._ensure_sources(conn, {a.source for a in batch}, kind, now)
            stored = {
                row.id: row for row in conn.execute(
                    sa.select(articles.c.id, articles.c.content_hash, articles.c.published,
                              articles.c.updated)
                    .where(articles.c.id.in_([a.id for a in batch]))
                )
            }
            new = [a for a in batch if a.id not in stored]
            changed = [
                a for a in batch
                if a.id in stored and stored[a.id].content_hash != a.content_hash
            ]
            matches: dict[str, str] = {}
            if new:
                rows = sorted((_row(a, first_seen=now) for a in new), key=lambda r: r["id"])
                inserted = set(conn.execute(insert_or(conn, articles).returning(articles.c.id),
                                            rows).scalars())  # ids sorted: one lock order
                new = [a for a in new if a.id in inserted]  # the rest: stored meanwhile
                matches = self._claim_keys(conn, new)
            matches |= self._claim_near(conn, new, changed, matches, near)
            published = {a.id: a.published for a in new}
            for article in changed:
                before = stored[article.id]
                published[article.id] = min(article.published, before.published)
                row = _row(article, update=True, published=published[article.id],
                           updated=article.updated if article.updated > before.updated else now)
                conn.execute(articles.update().where(articles.c.id == article.id).values(row))
            touched = new + changed
            old_topics = self._topics_of(conn, [a.id for a in changed])
            if changed:
                conn.execute(article_topics.delete().where(
                    article_topics.c.article_id.in_([a.id for a in changed])))
            topic_rows = [
                {"article_id": a.id, "topic": t, "published": published[a.id]}
                for a in touched for t in a.topics
            ]
            if topic_rows:
                conn.execute(insert_or(conn, article_topics), topic_rows)
            affected = {t for a in touched for t in a.topics}
            affected.update(t for topics in old_topics.values() for t in topics)
            affected |= self._settle_clusters(conn, new, matches, [a.id for a in changed])
        return SaveResult(len(new), len(changed), len(batch) - len(touched), frozenset(affected))

    def _settle_clusters(self, conn: Connection, new: Sequence[Article],
                         matches: Mapping[str, str], moved: Sequence[str]) -> set[str]:
        """Join each new story's cluster to the cluster of the article it `matches`, led by
        the copy dedupe.leads picks of their two canonical articles; the topics whose
        entries change.

        The clusters concerned, and those of the `moved` (edited) articles, are locked
        first (_lock_roots): no other transaction changes them until this one commits, so
        the leader is picked against each cluster's current canonical article, and the
        same copy leads whichever process stored which copy first. Those clusters get their
        members' topics again; a new story alone in its cluster has none to get, so most
        batches settle only a few.
        """
        if not (matches or moved):
            return set()
        root_of = _lock_roots(conn, {*matches, *matches.values(), *moved})
        lost_to: dict[str, dedupe.Copy] = {}

        def leader(copy: dedupe.Copy) -> dedupe.Copy:
            while copy.id in lost_to:
                copy = lost_to[copy.id]
            return copy

        for article in new:  # in batch order, as the dedupe window decided them
            if article.id in matches:
                one, other = leader(root_of[article.id]), leader(root_of[matches[article.id]])
                if one.id != other.id:
                    lead, lost = (one, other) if dedupe.leads(one, other) else (other, one)
                    lost_to[lost.id] = lead
        _join(conn, {lost: leader(lead).id for lost, lead in lost_to.items()})
        return self._cluster_topics(conn, {copy.id for copy in root_of.values()})

    def _claim_keys(self, conn: Connection, batch: Sequence[Article]) -> dict[str, str]:
        """Claim the new articles' URLs and texts. Returns id -> the stored article each new
        story repeats: the one its dedupe window found, else the holder of a key it claimed.

        The window only knows what this process stored or loaded; another process may have
        stored a copy of the same story meanwhile. The story_keys primary key keeps one
        holder per key, whichever process claims it first, and a story whose key is held
        joins the holder's cluster (_settle_clusters then picks the copy that leads it).
        """
        matches = {a.id: a.dedupe.duplicate_of or a.dedupe.replaces for a in batch
                   if a.dedupe and (a.dedupe.duplicate_of or a.dedupe.replaces)}
        claims = [key for a in batch if a.dedupe
                  for key in story_key_rows(a.id, a.dedupe.url, a.dedupe.fingerprint)]
        if not claims:
            return matches
        conn.execute(insert_or(conn, story_keys),
                     sorted(claims, key=lambda c: (c["kind"], c["value"])))  # one lock order
        holder_of = {(h.kind, h.value): h.article_id for h in conn.execute(
            sa.select(story_keys.c.kind, story_keys.c.value, story_keys.c.article_id)
            .where(story_keys.c.value.in_([c["value"] for c in claims])))}
        found = {}
        for claim in claims:
            article_id, holder = claim["article_id"], holder_of[claim["kind"], claim["value"]]
            if article_id not in matches and holder != article_id:
                matches[article_id] = holder
                found[article_id] = DedupeKeys(layer=claim["kind"], similarity=1.0,
                                               containment=1.0)  # as the window's
        _found(conn, found)
        return matches

    def _claim_near(self, conn: Connection, new: Sequence[Article], changed: Sequence[Article],
                    matched: Collection[str], near: NearCheck | None) -> dict[str, str]:
        """Store the batch's LSH bands; a new story near one that another process stored
        meanwhile joins its cluster. Returns id -> the stored article each such story repeats.

        As _claim_keys for exact keys: the window decided before this transaction, maybe
        without what another process was storing. With the bands' buckets locked, every
        article sharing one is committed and seen here, and `near` decides on those again.
        An edit adds its new bands and leaves the old ones to expire: candidates are
        verified against the stored signature, so a stale band only costs a comparison.
        Only on a shared database: SQLite has one writer, whose window is in memory.
        """
        if not self.shared:
            return {}
        bands = [row for a in (*new, *changed) if a.dedupe
                 for row in dedupe_band_rows(a.id, a.dedupe.signature, a.published)]
        if not bands:
            return {}
        locked = sorted({row["bucket"] for row in bands})  # one lock order for all
        self._lock_buckets(conn, locked)
        conn.execute(insert_or(conn, dedupe_bands),
                     sorted(bands, key=lambda r: (r["bucket"], r["article_id"])))
        leaders = {a.id: a for a in new
                   if a.dedupe and a.dedupe.signature and a.id not in matched}
        found = _decide_again(conn, bands, leaders, near) if near and leaders else {}
        self._unlock_buckets(conn, locked)
        return found

    @staticmethod
    def _lock_buckets(conn: Connection, buckets: Sequence[int]) -> None:
        """Make a concurrent save of a band key wait for this transaction.

        A row inserted into dedupe_locks blocks another transaction inserting the same key
        until this one ends, so the later of two saves of near copies sees the earlier
        committed. The rows are deleted before committing: the table is empty at rest.
        (Advisory locks would need one slot of PostgreSQL's lock table per key.)
        """
        for chunk in _chunks(buckets):
            conn.execute(dedupe_locks.insert(), [{"bucket": b} for b in chunk])

    @staticmethod
    def _unlock_buckets(conn: Connection, buckets: Sequence[int]) -> None:
        for chunk in _chunks(buckets):
            conn.execute(dedupe_locks.delete().where(dedupe_locks.c.bucket.in_(chunk)))

    def _cluster_topics(self, conn: Connection, roots: set[str]) -> set[str]:
        """Give each cluster in `roots` the topics of all its members; the topics touched.

        A canonical article carries its members' topics as rows marked `via` the member,
        so a topic feed finds the cluster through any of its outlets' tagging.
        """
        if not roots:
            return set()
        roots_list = sorted(roots)
        gone = conn.execute(
            article_topics.delete()
            .where(article_topics.c.article_id.in_(roots_list), article_topics.c.via.is_not(None))
            .returning(article_topics.c.topic)).scalars().all()
        own = conn.execute(
            sa.select(article_topics.c.article_id, article_topics.c.topic)
            .where(article_topics.c.article_id.in_(roots_list))).all()
        have = {(r.article_id, r.topic) for r in own}
        canonical = dict(conn.execute(
            sa.select(articles.c.id, articles.c.published)
            .where(articles.c.id.in_(roots_list), articles.c.duplicate_of.is_(None))).all())
        member_topics = conn.execute(
            sa.select(articles.c.duplicate_of, article_topics.c.topic, article_topics.c.article_id)
            .join(article_topics, article_topics.c.article_id == articles.c.id)
            .where(articles.c.duplicate_of.in_(list(canonical)), article_topics.c.via.is_(None))
            .order_by(articles.c.published, articles.c.id)).all()
        rows = {}
        for root, topic, member in member_topics:
            if (root, topic) not in have and (root, topic) not in rows:
                rows[root, topic] = {"article_id": root, "topic": topic,
                                     "published": canonical[root], "via": member}
        if rows:
            conn.execute(insert_or(conn, article_topics), list(rows.values()))
        return set(gone) | {t for _, t in have} | {t for _, t in rows}

    def _ensure_sources(self, conn: Connection, names: set[str], kind: str, now: datetime) -> None:
        known = set(conn.execute(sa.select(sources.c.name).where(sources.c.name.in_(names)))
                    .scalars())
        missing = [{"name": n, "kind": kind, "created": now} for n in sorted(names - known)]
        if missing:
            conn.execute(insert_or(conn, sources), missing)

    def _topics_of(self, conn: Connection, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        ids = list(ids)
        found: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            query = (sa.select(article_topics.c.article_id, article_topics.c.topic)
                     .where(article_topics.c.article_id.in_(ids))
                     .order_by(article_topics.c.topic))
            for article_id, topic in conn.execute(query).all():
                found[article_id].append(topic)
        return {i: tuple(t) for i, t in found.items()}

    def articles(self, topic: str | None = None, limit: int = 50,
                 read: dict[str, Article] | None = None) -> list[Article]:
        """The newest `limit` stories, of one topic or of all, newest first.

        One article per cluster of duplicates, its canonical one, with its outlet as
        `origin` and the cluster's other outlets as `reported_by`. `read` (id -> article)
        holds what the caller read before: a build reads twenty topics that share half
        their stories, so a topic's are taken from it where they can be, and the rest
        added to it.
        """
        with self.engine.connect() as conn:
            if topic is None:
                return _credited(conn, conn.execute(_NEWEST, {"limit": limit}).all())
            ids = conn.execute(_NEWEST_OF_TOPIC, {"topic": topic, "limit": limit}).scalars()
            return _recall(conn, ids.all(), {} if read is None else read)

    def article(self, reference: str) -> Article | None:
        """The article with this id, or the one whose id starts with it (8 characters up)."""
        with self.engine.connect() as conn:
            row = conn.execute(_ARTICLE_BY_ID, {"id": reference}).first()
            if row is None and len(reference) >= 8:
                ids = conn.execute(sa.select(articles.c.id).where(
                    articles.c.id.startswith(reference, autoescape=True)).limit(2)).scalars().all()
                if len(ids) == 1:
                    row = conn.execute(_ARTICLE_BY_ID, {"id": ids[0]}).first()
        return _article(row) if row is not None else None

    def members(self, root: str) -> list[Article]:
        """The duplicates in the cluster of canonical article `root`, earliest first."""
        query = (_article_select().where(articles.c.duplicate_of == root)
                 .order_by(articles.c.published, articles.c.id))
        with self.engine.connect() as conn:
            return [_article(row) for row in conn.execute(query)]

    def articles_with_own_tags(self, batch: int = 500) -> Iterator[Article]:
        """Every stored article, its `topics` only its own tags (not its cluster's): retagging."""
        own = article_topics.alias("own")
        tags = (sa.select(sa.func.aggregate_strings(own.c.topic, " "))
                .where(own.c.article_id == articles.c.id, own.c.via.is_(None))
                .scalar_subquery().label("topics"))
        query = sa.select(*(articles.c[n] for n in _ARTICLE_COLUMNS), tags).order_by(articles.c.id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield _article(row)

    def replace_tags(self, tags: Mapping[str, Sequence[str]]) -> set[str]:
        """Give each article in `tags` exactly these own tags; the tags whose articles changed.

        Their clusters then get their members' tags again (rows `via` a member), so a topic
        feed still finds each cluster through any member's tags.
        """
        ids = list(tags)
        if not ids:
            return set()
        with self.engine.begin() as conn:
            roots = set(conn.execute(
                sa.select(sa.func.coalesce(articles.c.duplicate_of, articles.c.id))
                .where(articles.c.id.in_(ids))).scalars())
            rows_of = (sa.select(article_topics.c.article_id, article_topics.c.topic)
                       .where(article_topics.c.article_id.in_(roots | set(ids))))
            before = set(conn.execute(rows_of).all())
            conn.execute(article_topics.delete().where(article_topics.c.article_id.in_(ids)))
            published = dict(conn.execute(sa.select(articles.c.id, articles.c.published)
                                          .where(articles.c.id.in_(ids))).all())
            rows = [{"article_id": i, "topic": t, "published": published[i]}
                    for i, own in tags.items() for t in dict.fromkeys(own)]
            if rows:
                conn.execute(article_topics.insert(), rows)
            self._cluster_topics(conn, roots)
            after = set(conn.execute(rows_of).all())
        return {topic for _, topic in before ^ after}

    # -- dedupe -----------------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """Whether processes on several machines may store into it at once (PostgreSQL):
        then the near-duplicate index is kept in the database (dedupe_bands), and the
        distributed roles of `nashra run` can use it."""
        return is_shared(self.engine)

    def dedupe_window(self, since: datetime, near: Sequence[DedupeKeys] | None = None
                      ) -> list[WindowRow]:
        """The stored dedupe keys of every article published since `since`; with `near`,
        only of those sharing a URL, a text or an LSH band with one of these keys, and
        of their clusters' canonical articles.
        """
        with self.engine.connect() as conn:
            if near is None:
                return _window_rows(conn, since=since)
            holders = _band_holders(conn, sorted({b for k in near
                                                  for b in dedupe.buckets(k.signature)}))
            return _with_roots(conn, set().union(*holders.values(), _key_holders(conn, near)),
                               since)

    def expire_dedupe_bands(self, before: datetime) -> int:
        """Drop the LSH bands of articles published before `before`; how many went."""
        with self.engine.begin() as conn:
            return conn.execute(dedupe_bands.delete().where(
                dedupe_bands.c.published < before)).rowcount

    def dedupe_keys(self, ids: Iterable[str]) -> dict[str, DedupeKeys]:
        """id -> stored dedupe keys, for those of `ids` already stored."""
        query = sa.select(articles.c.id, *(articles.c[n] for n in _DEDUPE_COLUMNS)).where(
            articles.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return {row.id: _keys(row) for row in conn.execute(query)}

    def split(self, article_id: str) -> set[str]:
        """Undo a merge: `article_id` leaves its cluster and stands alone; topics touched.

        When it was the canonical article, its earliest duplicate takes its place.
        """
        with self.engine.begin() as conn:
            root = _lock_roots(conn, [article_id])[article_id].id
            if root == article_id:
                heir = conn.execute(
                    sa.select(articles.c.id).where(articles.c.duplicate_of == article_id)
                    .order_by(articles.c.published, articles.c.id).limit(1)).scalar()
                if heir is None:
                    return set()
                conn.execute(articles.update().where(articles.c.duplicate_of == article_id)
                             .values(duplicate_of=heir))
                conn.execute(articles.update().where(articles.c.id == heir)
                             .values(duplicate_of=None))
                root = heir
            conn.execute(articles.update().where(articles.c.id == article_id)
                         .values(duplicate_of=None, dedupe_layer="split"))
            return self._cluster_topics(conn, {root, article_id})

    def article_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one()

    def topic_counts(self) -> dict[str, int]:
        """topic -> stories in it: clusters of duplicates count once."""
        query = (sa.select(article_topics.c.topic, sa.func.count())
                 .join(articles, articles.c.id == article_topics.c.article_id)
                 .where(articles.c.duplicate_of.is_(None))
                 .group_by(article_topics.c.topic))
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    def newest_shown(self, topics: Sequence[str], limit: int) -> datetime | None:
        """The latest `updated` of the stories shown by the feeds of `topics` (each its
        newest `limit`, as `articles` picks them): when the index and OPML list changed.

        One light query, so a build of a few topics needs no read of the others' feeds.
        """
        if not topics:
            return None
        shown = [sa.select(articles.c.updated)
                 .join(article_topics, article_topics.c.article_id == articles.c.id)
                 .where(article_topics.c.topic == topic, articles.c.duplicate_of.is_(None))
                 .order_by(article_topics.c.published.desc(), articles.c.id).limit(limit)
                 .subquery() for topic in topics]
        union = sa.union_all(*(sa.select(feed.c.updated) for feed in shown)).subquery()
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(union.c.updated))).scalar()

    @functools.cached_property
    def created(self) -> datetime:
        """When this database was created: the date of a feed that has no entries yet."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == "created")).scalar()
        return datetime.fromisoformat(value)

    # -- coordination between processes --------------------------------------------------

    @contextmanager
    def advisory_lock(self, name: str, wait: bool = False
                      ) -> Iterator[Callable[[], bool] | None]:
        """Hold PostgreSQL's advisory lock `name` while the block runs, on a connection of
        its own. Yields a check that the lock is still held (its connection alive), or None
        when another session holds it and `wait` is false. The lock lives with the
        connection: a process that dies frees it."""
        if not self.shared:
            raise StorageError(f"lock {name!r}: advisory locks need PostgreSQL storage")
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                             signed=True)
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.OperationalError as exc:
            raise StorageError(f"cannot reach storage for lock {name!r}: {exc.orig}") from None

        def held() -> bool:
            try:
                return conn.execute(sa.select(1)).scalar() == 1
            except sa.exc.DBAPIError:
                return False

        with conn:
            if wait:
                conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
            elif not conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar():
                yield None
                return
            try:
                yield held
            finally:
                with suppress(sa.exc.DBAPIError):  # a lost connection took the lock with it
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))

    def request_rebuilds(self, topics: Collection[str], due: datetime) -> set[str]:
        """Ask for the feeds of `topics` to be rebuilt at `due`; the topics not waiting yet.

        A topic already waiting keeps its time and gains nothing: the rebuild that takes
        it reads the topic's articles then, this request's changes among them.
        """
        if not topics:
            return set()
        rows = [{"topic": topic, "due": due} for topic in sorted(topics)]
        with self.engine.begin() as conn:
            return set(conn.execute(insert_or(conn, pending_rebuilds)
                                    .returning(pending_rebuilds.c.topic), rows).scalars())

    def take_due_rebuilds(self, now: datetime) -> set[str]:
        """Remove and return the topics whose rebuild is due at `now`, for the caller to
        build: a change stored after this asks for a rebuild of its own."""
        with self.engine.begin() as conn:
            return set(conn.execute(pending_rebuilds.delete()
                                    .where(pending_rebuilds.c.due <= now)
                                    .returning(pending_rebuilds.c.topic)).scalars())

    # -- documents ------------------------------------------------------------------------

    def built_from(self) -> dict[str, str]:
        """path -> fingerprint of the inputs each stored document was built from."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(documents.c.path, documents.c.built_from)).all())

    def save_documents(self, docs: Sequence[Document]) -> None:
        """Replace these documents atomically, so readers never see half a rebuild."""
        if not docs:
            return
        with self.engine.begin() as conn:
            _replace_documents(conn, docs)

    def documents(self) -> list[Document]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(documents)).mappings().all()
        return [Document(**row) for row in rows]


    # -- sources --------------------------------------------------------------------------

    def sources(self, include_disabled: bool = True) -> list[Source]:
        """Every feed source not removed, by name."""
        query = sa.select(sources).where(sources.c.kind == "feed", sources.c.removed.is_(False))
        if not include_disabled:
            query = query.where(sources.c.enabled.is_(True))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(sources.c.name)).mappings().all()
        return [_source(row) for row in rows]

    def source(self, name: str) -> Source | None:
        query = sa.select(sources).where(sources.c.name == name, sources.c.removed.is_(False))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _source(row) if row else None

    def add_source(self, source: Source) -> Source:
        """Insert `source`, or update what its config says while keeping its polling state.

        A removed source of the same name comes back with its articles and state. A source
        the config gives no title keeps the one its feed gave: credits name the outlet by
        it, and the config is synced every 30 s.
        """
        settings = {k: v for k, v in _source_row(source).items()
                    if k in _SOURCE_SETTINGS and (k != "title" or v is not None)}
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(sources.c.name).where(
                sources.c.name == source.name)).first()
            if exists:
                conn.execute(sources.update().where(sources.c.name == source.name)
                             .values(**settings, removed=False))
            else:
                conn.execute(sources.insert().values(
                    {**_source_row(source), "created": datetime.now(UTC), "removed": False}))
        return self.source(source.name)

    def remove_source(self, name: str) -> bool:
        """Stop polling `name`; its articles stay stored. False if there is no such source."""
        with self.engine.begin() as conn:
            result = conn.execute(sources.update()
                                  .where(sources.c.name == name, sources.c.removed.is_(False))
                                  .values(removed=True, enabled=False))
        return result.rowcount > 0

    def save_source_state(self, source: Source) -> None:
        """Record where polling of `source` stands (validators, errors, next poll)."""
        state = {k: v for k, v in _source_row(source).items() if k in _SOURCE_STATE}
        with self.engine.begin() as conn:
            conn.execute(sources.update().where(sources.c.name == source.name).values(**state))

    # -- partners -------------------------------------------------------------------------

    def partners(self) -> list[Partner]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(partners).order_by(partners.c.name)).mappings().all()
        return [Partner(**{**row, "topics": tuple(row["topics"])}) for row in rows]

    def save_partner(self, partner: Partner) -> None:
        """Insert `partner`, or replace the one of the same name (a rotated token, say)."""
        row = {**asdict(partner), "topics": list(partner.topics)}
        with self.engine.begin() as conn:
            conn.execute(partners.delete().where(partners.c.name == partner.name))
            conn.execute(partners.insert().values(row))

    def remove_partner(self, name: str) -> bool:
        with self.engine.begin() as conn:
            conn.execute(partner_usage.delete().where(partner_usage.c.name == name))
            return conn.execute(partners.delete().where(partners.c.name == name)).rowcount > 0

    def take_pull(self, name: str, rate: int) -> int:
        """Count a pull by partner `name`, allowed `rate` pulls a minute in bursts of up to
        `rate`: 0 when it may go ahead, else the seconds until it may.

        A token bucket in one row, taken from by one UPDATE, so every server process (and
        every machine) shares it: the database orders concurrent pulls. A changed rate
        starts a full bucket.
        """
        now, usage = time.time(), partner_usage.c
        refill = usage.tokens + (now - usage.refilled) * rate / 60
        tokens = sa.case((usage.rate != rate, float(rate)), (refill > rate, float(rate)),
                         else_=refill)
        mine = partner_usage.update().where(usage.name == name)
        with self.engine.begin() as conn:
            conn.execute(insert_or(conn, partner_usage).values(
                name=name, rate=rate, tokens=float(rate), refilled=now))
            taken = conn.execute(mine.where(tokens >= 1).values(
                rate=rate, tokens=tokens - 1, refilled=now, pulls=usage.pulls + 1,
                last_pull=datetime.now(UTC))).rowcount
            if taken:
                return 0
            left = conn.execute(mine.values(rate=rate, tokens=tokens, refilled=now,
                                            limited=usage.limited + 1)
                                .returning(usage.tokens)).scalar_one()
        return math.ceil((1 - left) * 60 / rate)

    def partner_pulls(self) -> dict[str, tuple[int, int, datetime | None]]:
        """Partner name -> (pulls, refused pulls, last pull), counted since it was added."""
        query = sa.select(partner_usage.c.name, partner_usage.c.pulls, partner_usage.c.limited,
                          partner_usage.c.last_pull)
        with self.engine.connect() as conn:
            return {name: (pulls, limited, last) for name, pulls, limited, last
                    in conn.execute(query)}

    def partner_key(self) -> bytes:
        """This install's key for hashing partner tokens, made on first use.

        Tokens are long and random, so a keyed HMAC is enough (no slow password hash) and
        the stored hashes are useless without the database's own key.
        """
        query = sa.select(meta.c.value).where(meta.c.key == "partner_key")
        with self.engine.begin() as conn:
            if conn.execute(query).scalar() is None:  # another process may be making it too
                conn.execute(insert_or(conn, meta).values(key="partner_key",
                                                          value=secrets.token_hex(32)))
            return bytes.fromhex(conn.execute(query).scalar_one())

    # -- archives (RFC 5005) --------------------------------------------------------------

    def open_archive(self, topic: str, shown: Collection[str],
                     read: dict[str, Article] | None = None) -> tuple[int, list[Article]]:
        """How many archive pages `topic` has frozen, and its stories that no frozen page
        holds and the current feed does not show, oldest first: the pages still to fill.

        `read` as for `articles`. A build asks this of every changed topic.
        """
        story = article_topics.c.article_id  # not articles.id: the filters then need no row
        held = sa.exists().where(archived.c.topic == topic, archived.c.article_id == story)
        query = (sa.select(story).join(articles, articles.c.id == story)
                 .where(article_topics.c.topic == topic, articles.c.duplicate_of.is_(None),
                        story.not_in(list(shown)), ~held)
                 .order_by(article_topics.c.published, story))
        pages = sa.select(sa.func.max(archived.c.page)).where(archived.c.topic == topic)
        with self.engine.connect() as conn:
            older = conn.execute(query).scalars().all()
            return conn.execute(pages).scalar() or 0, _recall(conn, older, {} if read is None
                                                              else read)

    def freeze_archive(self, topic: str, page: int, ids: Sequence[str],
                       document: Document) -> None:
        """Record a full archive page and store its document, together: it never changes."""
        with self.engine.begin() as conn:
            conn.execute(archived.insert(), [{"topic": topic, "article_id": i, "page": page}
                                             for i in ids])
            _replace_documents(conn, [document])


_SOURCE_STATE = ("url", "title", "enabled", "etag", "last_modified", "last_fetch", "last_status",
                 "last_error", "error_count", "next_poll", "interval", "item_count", "bozo")
_SOURCE_SETTINGS = ("url", "kind", "title", "language", "topics", "full_text", "min_interval",
                    "max_interval", "enabled", "origin")


def _source_row(source: Source) -> dict:
    row = asdict(source)
    row["topics"] = list(source.topics)
    return row


def _source(row) -> Source:
    data = {name: row[name] for name in _SOURCE_FIELDS}
    data["topics"] = tuple(data["topics"] or ())
    return Source(**data)


def _row(article: Article, update: bool = False, **overrides) -> dict:
    """The column values of `article`; an update without dedupe keys keeps the stored ones.

    Never its cluster: a new story stands alone until _settle_clusters joins it to one, and
    an update keeps the cluster as stored (another process may have moved it meanwhile).
    """
    row = {name: getattr(article, name) for name in _ARTICLE_COLUMNS}
    row["categories"] = list(article.categories)
    row["enclosures"] = [asdict(e) for e in article.enclosures]
    if article.dedupe is not None or not update:
        keys = article.dedupe or DedupeKeys()
        row.update(canonical_url=keys.url or None, text_fingerprint=keys.fingerprint or None,
                   signature=keys.signature or None, dedupe_layer=keys.layer,
                   dedupe_similarity=keys.similarity, dedupe_containment=keys.containment)
    row.update(overrides)
    return row


def _article(row, **fields) -> Article:
    """An Article from a row of `_article_select`: its columns, topics and dedupe keys."""
    data = dict(zip(_ARTICLE_COLUMNS, row, strict=False))  # the columns come first
    data["categories"] = tuple(data["categories"] or ())
    data["enclosures"] = tuple(Enclosure(**e) for e in data["enclosures"] or ())
    topics = tuple(sorted(row.topics.split(" "))) if row.topics else ()
    keys = _keys(row) if "signature" in row._fields else None
    return Article(**data, topics=topics, dedupe=keys, **fields)


@dataclass(frozen=True)
class WindowRow:
    id: str
    published: datetime
    keys: DedupeKeys


NearCheck = Callable[[Article, Sequence[WindowRow]], DedupeKeys]
"""The dedupe stage's decision on a new story against these stored articles."""


def _chunks(values: Sequence) -> Iterator[Sequence]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _window_rows(conn: Connection, ids: Collection[str] | None = None,
                 since: datetime | None = None) -> list[WindowRow]:
    """The dedupe keys of these articles (all with a signature when `ids` is None)."""
    query = (sa.select(articles.c.id, articles.c.published,
                       *(articles.c[n] for n in _DEDUPE_COLUMNS))
             .where(articles.c.signature.is_not(None)))
    if since is not None:
        query = query.where(articles.c.published >= since)
    if ids is None:
        return [WindowRow(row.id, row.published, _keys(row)) for row in conn.execute(query)]
    return [WindowRow(row.id, row.published, _keys(row)) for chunk in _chunks(sorted(ids))
            for row in conn.execute(query.where(articles.c.id.in_(chunk)))]


def _decide_again(conn: Connection, bands: Sequence[dict], leaders: Mapping[str, Article],
                  near: NearCheck) -> dict[str, str]:
    """Each of `leaders` decided again by `near` against the stored articles (outside the
    batch of these `bands`) that share a band with it; id -> the article it repeats."""
    batch = {row["article_id"] for row in bands}
    mine = [row for row in bands if row["article_id"] in leaders]
    holders = _band_holders(conn, sorted({row["bucket"] for row in mine}))
    near_of: dict[str, set[str]] = {}
    for row in mine:
        near_of.setdefault(row["article_id"], set()).update(holders.get(row["bucket"], ()))
    rows = {r.id: r for r in _with_roots(conn, set().union(*near_of.values()) - batch)}
    matches, decided = {}, {}
    for article_id, near_ids in near_of.items():
        near_ids = {i for i in near_ids if i in rows}  # stored outside the batch, in the window
        if near_ids:
            near_ids |= {rows[i].keys.duplicate_of for i in near_ids} & rows.keys()
            keys = near(leaders[article_id], [rows[i] for i in near_ids])
            if keys.duplicate_of or keys.replaces:
                matches[article_id] = keys.duplicate_of or keys.replaces
                decided[article_id] = keys
    _found(conn, decided)
    return matches


def _with_roots(conn: Connection, ids: set[str], since: datetime | None = None
                ) -> list[WindowRow]:
    """The dedupe keys of these articles and of their clusters' canonical articles."""
    found = _window_rows(conn, ids, since)
    roots = {r.keys.duplicate_of for r in found} - ids - {None}
    return found + _window_rows(conn, roots, since)


def _band_holders(conn: Connection, buckets: Sequence[int]) -> dict[int, set[str]]:
    """band key -> the articles whose signatures have it."""
    holders: dict[int, set[str]] = {}
    for chunk in _chunks(buckets):
        for bucket, article_id in conn.execute(
                sa.select(dedupe_bands.c.bucket, dedupe_bands.c.article_id)
                .where(dedupe_bands.c.bucket.in_(chunk))):
            holders.setdefault(bucket, set()).add(article_id)
    return holders


def _key_holders(conn: Connection, keys: Sequence[DedupeKeys]) -> set[str]:
    """The articles holding the story_keys of these URLs and texts."""
    values = sorted({c["value"] for k in keys for c in story_key_rows("", k.url, k.fingerprint)})
    return {i for chunk in _chunks(values) for i in conn.execute(
        sa.select(story_keys.c.article_id).where(story_keys.c.value.in_(chunk))).scalars()}


def _replace_documents(conn: Connection, docs: Sequence[Document]) -> None:
    """Upsert, not delete and insert: SQLite then rewrites a body of the same size in
    place and skips its pages whose bytes did not change (34 MB of feeds rebuilt with no
    byte changed: ~20 ms, not ~100), and a body of another size costs a third less."""
    conn.execute(insert_or(conn, documents, update=True), [asdict(d) for d in docs])


def _lock_roots(conn: Connection, ids: Collection[str]) -> dict[str, dedupe.Copy]:
    """id -> the canonical article of its cluster, whose row stays locked until commit.

    Every change to a cluster locks its canonical article first, so no two transactions
    settle one cluster at once, and one that waited sees the other's members. A canonical
    article taken over meanwhile is no longer one when its lock is granted: the lookup
    goes on from there to its new one. (SQLite, with one writer, ignores FOR UPDATE.)
    """
    found: dict[str, dedupe.Copy] = {}
    reached = {i: i for i in ids}  # id -> the article its lookup has reached
    while reached:
        step = dict(conn.execute(
            sa.select(articles.c.id, sa.func.coalesce(articles.c.duplicate_of, articles.c.id))
            .where(articles.c.id.in_(set(reached.values())))).all())
        locked = {row.id: _copy(row) for row in conn.execute(
            sa.select(articles.c.id, articles.c.published, articles.c.signature)
            .where(articles.c.id.in_(set(step.values())), articles.c.duplicate_of.is_(None))
            .order_by(articles.c.id).with_for_update(key_share=True))}  # one lock order
        found.update({i: locked[step[at]] for i, at in reached.items() if step[at] in locked})
        reached = {i: step[at] for i, at in reached.items() if step[at] not in locked}
    return found


def _copy(row) -> dedupe.Copy:
    size = dedupe.Signature.from_bytes(row.signature).size if row.signature else 0
    return dedupe.Copy(row.id, row.published, size)


def _join(conn: Connection, leaders: Mapping[str, str]) -> None:
    """The cluster of each canonical article in `leaders` joins its value's cluster."""
    if leaders:
        old = sa.bindparam("old")
        conn.execute(articles.update()
                     .where(sa.or_(articles.c.id == old, articles.c.duplicate_of == old))
                     .values(duplicate_of=sa.bindparam("new")),
                     [{"old": old, "new": new} for old, new in sorted(leaders.items())])


_FOUND = articles.update().where(articles.c.id == sa.bindparam("found")).values(
    dedupe_layer=sa.bindparam("layer"), dedupe_similarity=sa.bindparam("similarity"),
    dedupe_containment=sa.bindparam("containment"))


def _found(conn: Connection, found: Mapping[str, DedupeKeys]) -> None:
    """Record how each new story was found to repeat a stored one (their clusters are
    settled with the batch's), in one statement."""
    if found:
        conn.execute(_FOUND, [{"found": i, "layer": k.layer, "similarity": k.similarity,
                               "containment": k.containment} for i, k in found.items()])


def _keys(row) -> DedupeKeys:
    return DedupeKeys(row.canonical_url or "", row.text_fingerprint or "", row.signature or b"",
                      row.duplicate_of, row.dedupe_layer, row.dedupe_similarity or 0.0,
                      row.dedupe_containment or 0.0)


def _recall(conn: Connection, ids: Sequence[str], read: dict[str, Article]) -> list[Article]:
    """The articles `ids`, in that order: from `read` where it has them, else read (and
    added to it). An id gone meanwhile is left out."""
    missing = [i for i in ids if i not in read]
    for chunk in _chunks(missing):
        rows = conn.execute(_ARTICLES_BY_ID, {"ids": list(chunk)}).all()
        read.update((article.id, article) for article in _credited(conn, rows))
    return [read[i] for i in ids if i in read]


def _credited(conn: Connection, rows: Sequence) -> list[Article]:
    """Articles of `rows`, each with its outlet and its cluster's other outlets."""
    credits: dict[str, list[Credit]] = {row.id: [] for row in rows}
    if credits:
        for member in conn.execute(_MEMBERS, {"ids": list(credits)}):
            credits[member.duplicate_of].append(_credit(member))
    return [_article(row, origin=_credit(row), reported_by=tuple(credits[row.id]))
            for row in rows]


def _credit(row) -> Credit:
    feed_url = row.source_url if row.source_kind == "feed" else None
    return Credit(row.source_title or row.source, feed_url, row.url, row.published)


_DEDUPE_COLUMNS = ("canonical_url", "text_fingerprint", "signature", "duplicate_of",
                   "dedupe_layer", "dedupe_similarity", "dedupe_containment")
_SOURCE_OF = (sources.c.title.label("source_title"), sources.c.url.label("source_url"),
              sources.c.kind.label("source_kind"))


def _article_select(keys: bool = True) -> sa.Select:
    """Articles with their topics (space-joined: slugs have no spaces) and their outlet.

    Publishing leaves out the dedupe `keys`: a build reads thousands of rows.
    """
    tagged = article_topics.alias("tagged")
    topics = (sa.select(sa.func.aggregate_strings(tagged.c.topic, " "))
              .where(tagged.c.article_id == articles.c.id).scalar_subquery().label("topics"))
    columns = _ARTICLE_COLUMNS + (_DEDUPE_COLUMNS if keys else ())
    return (sa.select(*(articles.c[n] for n in columns), topics, *_SOURCE_OF)
            .join(sources, sources.c.name == articles.c.source))


def _newest_articles() -> tuple[sa.Select, sa.Select]:
    """The newest-first queries, built once: publishing runs one per topic every build.

    Only canonical articles: a topic shows each cluster once, found through the topics of
    any of its members (see Storage._cluster_topics). A topic's gives the ids only, for
    `_recall`.
    """
    limit, canonical = sa.bindparam("limit"), articles.c.duplicate_of.is_(None)
    newest = (_article_select(keys=False).where(canonical)
              .order_by(articles.c.published.desc(), articles.c.id).limit(limit))
    story = article_topics.c.article_id
    of_topic = (sa.select(story).join(articles, articles.c.id == story)
                .where(article_topics.c.topic == sa.bindparam("topic"), canonical)
                .order_by(article_topics.c.published.desc(), story).limit(limit))
    return newest, of_topic


_NEWEST, _NEWEST_OF_TOPIC = _newest_articles()
_ARTICLE_BY_ID = _article_select().where(articles.c.id == sa.bindparam("id"))
_ARTICLES_BY_ID = _article_select(keys=False).where(
    articles.c.id.in_(sa.bindparam("ids", expanding=True)))
_MEMBERS = (sa.select(articles.c.duplicate_of, articles.c.source, articles.c.url,
                      articles.c.published, *_SOURCE_OF)
            .join(sources, sources.c.name == articles.c.source)
            .where(articles.c.duplicate_of.in_(sa.bindparam("ids", expanding=True)))
            .order_by(articles.c.published, articles.c.id))
