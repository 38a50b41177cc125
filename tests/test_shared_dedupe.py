"""PostgreSQL: the near-duplicate index in the database, so every worker finds the copies
any other stored.

Two windows over one database (two workers), OS processes racing copies of the same
stories (each story made one, led by its earliest copy), the bands' expiry, and the bands
of a version 6 database, upgraded in place or an SQLite file moved over by `nashra db
migrate`.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

import sqlalchemy as sa
from conftest import run_together

from feeds.clusters import Deduper
from feeds.dedupe import BANDS
from feeds.model import Article
from storage import Storage
from storage.copy import copy_database
from storage.schema import SCHEMA_VERSION, dedupe_bands, meta, schema_version

WORDS = ("الأمن", "المغرب", "الشرطة", "فيينا", "الرباط", "تعاون", "دولي", "مكافحة", "الإرهاب",
         "الاقتصاد", "البرلمان", "الحكومة", "الانتخابات", "الرياضة", "المنتخب", "الطقس")
NOW = datetime.now(UTC).replace(microsecond=0)


def _story(n: int, source: str, copy: bool = False) -> Article:
    """Story n as `source` carried it: 120 words; a copy rewrites its title, its URL and
    one word in twenty, so only the near layer can find it."""
    rng = random.Random(n)
    words = [f"{w}{n}" for w in rng.choices(WORDS, k=120)]
    if copy:
        words = [f"{w}x" if i % 20 == 7 else w for i, w in enumerate(words)]
    published = NOW - timedelta(hours=1, minutes=n)
    return Article(source=source, key=f"story-{n}", title=f"{'نقلا' if copy else 'خبر'} {n}",
                   content_html=f"<p>{' '.join(words)}</p>", summary="", language="ar",
                   published=published + timedelta(seconds=copy), updated=published,
                   url=f"https://{source}.example.org/{n}", topics=("security",),
                   content_hash=f"{source}-{n}")


OUTLETS = ("paper", "wire", "blog")


def _outlet_copy(n: int, outlet: int, now: datetime) -> Article:
    """Story n as OUTLETS[outlet] carried it, a second apart, each outlet first with a third
    of the stories. In batches 0, 2, 4... (stories 0-4, 10-14...) they are at one URL, with
    each outlet's own text: no band is shared, so only the canonical article's lock orders
    the saves. In the others they are at each outlet's own URL, rewritten by wire and blog
    alike (those two found by text, near the paper's). `now` is the test's: each spawned
    process has a NOW of its own."""
    source = OUTLETS[outlet]
    story = _story(n, source, copy=outlet > 0) if n // 5 % 2 else replace(
        _story(n + 1000 * outlet, source), id="", key=f"story-{n}",
        url=f"https://news.example.org/{n}")
    published = now - timedelta(hours=1, minutes=n) + timedelta(seconds=(n + outlet) % 3)
    return replace(story, published=published, updated=published)


def _store(storage: Storage, deduper: Deduper, batch: list[Article]) -> list[Article]:
    """What feeds.pipeline.store does with a batch; the articles as decided."""
    decided = deduper.assign(batch, storage.dedupe_keys(a.id for a in batch))
    storage.save_articles(decided, kind="feed", near=deduper.recheck)
    return decided


def _root(storage: Storage, article: Article) -> str:
    keys = storage.article(article.id).dedupe
    return keys.duplicate_of or article.id


def _bands(storage: Storage) -> list[tuple[str, int]]:
    """(article id, how many bands) of every article in the stored index."""
    with storage.engine.connect() as conn:
        return sorted(conn.execute(sa.select(dedupe_bands.c.article_id, sa.func.count())
                                   .group_by(dedupe_bands.c.article_id)).all())


def test_a_second_window_finds_near_copies_the_first_stored_without_reloading(pg_url):
    first, second = Storage(pg_url), Storage(pg_url)
    try:
        one, two = Deduper(storage=first), Deduper(storage=second)  # before anything stored
        _store(first, one, [_story(n, "paper") for n in range(3)])
        copies = _store(second, two, [_story(n, "wire", copy=True) for n in range(3)])

        for n, copy in enumerate(copies):
            assert (copy.dedupe.duplicate_of, copy.dedupe.layer) == (_story(n, "paper").id,
                                                                     "near")
            assert second.article(copy.id).dedupe.duplicate_of == _story(n, "paper").id
    finally:
        first.close()
        second.close()


def test_the_stored_bands_expire_with_the_window(pg_url):
    storage = Storage(pg_url)
    try:
        deduper = Deduper(window=timedelta(days=14), storage=storage)
        old, new = (replace(_story(n, "paper"), published=NOW - timedelta(days=days))
                    for n, days in ((1, 13), (2, 0)))
        _store(storage, deduper, [old, new])
        assert _bands(storage) == sorted([(old.id, BANDS), (new.id, BANDS)])
        deduper.expire(NOW + timedelta(days=2))
        assert _bands(storage) == [(new.id, BANDS)]
    finally:
        storage.close()


def _race(url: str, copy_of: Callable[[int], Article], together, decided_alone) -> None:
    """One worker process: its own storage and window, `copy_of` stories 0-39 in batches of
    5 as the pipeline stores them, each saved at the same moment as the other workers'
    (all decided by then)."""
    storage = Storage(url)
    deduper = Deduper(storage=storage)
    alone = 0
    for first in range(0, 40, 5):
        batch = [copy_of(n) for n in range(first, first + 5)]
        decided = deduper.assign(batch, storage.dedupe_keys(a.id for a in batch))
        alone += sum(not a.dedupe.duplicate_of for a in decided)
        together.wait()
        storage.save_articles(decided, kind="feed", near=deduper.recheck)
    decided_alone.put(alone)
    storage.close()


def test_two_processes_storing_near_copies_at_once_make_one_cluster_each(pg_url):
    Storage(pg_url).close()  # the schema exists before the workers race on the rows
    context = multiprocessing.get_context("spawn")
    together, decided_alone = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_race, args=(pg_url, partial(_story, source=source,
                                                                   copy=copy),
                                                   together, decided_alone))
               for source, copy in (("paper", False), ("wire", True))]
    run_together(workers)

    storage = Storage(pg_url)
    try:
        for n in range(40):
            assert _root(storage, _story(n, "paper")) == _root(storage, _story(n, "wire", True))
        assert len(storage.articles(limit=100)) == 40
    finally:
        storage.close()
    # Both windows decided every story new; the database made each one story.
    assert decided_alone.get() + decided_alone.get() == 80


def test_three_processes_storing_copies_at_once_leave_each_story_to_its_earliest(pg_url):
    Storage(pg_url).close()  # the schema exists before the workers race on the rows
    context = multiprocessing.get_context("spawn")
    together, decided_alone = context.Barrier(len(OUTLETS)), context.Queue()
    copy_of = [partial(_outlet_copy, outlet=i, now=NOW) for i in range(len(OUTLETS))]
    run_together([context.Process(target=_race, args=(pg_url, copies, together, decided_alone))
                  for copies in copy_of])

    storage = Storage(pg_url)
    try:
        for n in range(40):
            copies = [copy(n) for copy in copy_of]
            earliest = min(copies, key=lambda a: a.published)
            assert {_root(storage, a) for a in copies} == {earliest.id}, n
    finally:
        storage.close()
    # Every window decided every story new: the database made each one story.
    assert sum(decided_alone.get() for _ in OUTLETS) == 40 * len(OUTLETS)


def _as_version_6(url: str) -> None:
    """Papers' stories stored, then the database made as version 6 left it: no index, nor
    the tables of the versions after it."""
    storage = Storage(url)
    _store(storage, Deduper(), [_story(n, "paper") for n in range(3)])
    with storage.engine.begin() as conn:
        for later in ("dedupe_bands", "dedupe_locks", "partner_usage", "pending_rebuilds"):
            conn.execute(sa.text(f"DROP TABLE {later}"))
        conn.execute(sa.text("DROP INDEX ix_archived_topic_page"))  # version 10
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="6"))
    storage.close()


def _finds_the_copy(storage: Storage) -> None:
    assert _bands(storage) == sorted((_story(n, "paper").id, BANDS) for n in range(3))
    copy = replace(_story(1, "wire", copy=True), published=NOW)
    [decided] = Deduper(storage=storage).assign([copy], {})
    assert decided.dedupe.duplicate_of == _story(1, "paper").id


def test_a_version_6_database_gets_the_bands_of_its_stored_signatures(pg_url):
    _as_version_6(pg_url)
    upgraded = Storage(pg_url)
    try:
        with upgraded.engine.connect() as conn:
            assert schema_version(conn) == SCHEMA_VERSION
        _finds_the_copy(upgraded)
    finally:
        upgraded.close()


def test_a_version_6_sqlite_file_moved_to_postgresql_gets_its_bands(tmp_path, pg_url):
    sqlite = f"sqlite:///{tmp_path / 'old.db'}"
    _as_version_6(sqlite)
    copied = copy_database(sqlite, pg_url)
    assert copied["articles"] == 3 and "dedupe_bands" not in copied  # derived, not copied
    storage = Storage(pg_url)
    try:
        _finds_the_copy(storage)
    finally:
        storage.close()
