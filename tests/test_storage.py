"""Storage on real SQLite files and PostgreSQL: schema, atomic batches, updates, topics."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from itertools import permutations

import pytest
import sqlalchemy as sa
from conftest import T0, hours

from feeds.clusters import Deduper, dedupe_keys
from storage import SCHEMA_VERSION, SaveResult, Storage
from storage.schema import articles, meta, pending_rebuilds, story_keys

pytestmark = pytest.mark.both_backends


def _meta(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(meta.c.key, meta.c.value)).all())
    finally:
        engine.dispose()


def test_schema_version_is_recorded_in_meta(storage, storage_url):
    assert _meta(storage_url)["schema_version"] == str(SCHEMA_VERSION)


def test_reopening_keeps_data_and_does_not_migrate_again(storage_url, storage, make_article):
    storage.save_articles([make_article("a")])
    before = _meta(storage_url)
    storage.close()

    reopened = Storage(storage_url)
    try:
        assert [a.key for a in reopened.articles()] == ["a"]
        assert _meta(storage_url) == before
    finally:
        reopened.close()


def test_sqlite_runs_in_wal_mode(db_path):
    Storage(f"sqlite:///{db_path}").close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_batch_with_an_invalid_article_stores_nothing(storage, make_article):
    storage.save_articles([make_article("first")])
    naive = make_article("bad", published=datetime(2025, 5, 1, 8, 0))

    with pytest.raises(Exception, match="naive"):
        storage.save_articles([make_article("good"), naive])

    assert [a.key for a in storage.articles()] == ["first"]
    assert storage.topic_counts() == {"security": 1}


def test_saving_the_same_article_twice_keeps_one_row(storage, make_article):
    storage.save_articles([make_article("a")])
    result = storage.save_articles([make_article("a")])

    assert result == SaveResult(new=0, updated=0, unchanged=1, topics=frozenset())
    assert storage.article_count() == 1


def test_a_changed_hash_updates_in_place_and_keeps_published(storage, make_article):
    original = make_article("a")
    storage.save_articles([original])
    edited = make_article("a", title="عنوان جديد", content_hash="hash-2",
                          published=T0 + hours(5))

    result = storage.save_articles([edited])

    (stored,) = storage.articles()
    assert (result.new, result.updated) == (0, 1)
    assert stored.id == original.id
    assert stored.title == "عنوان جديد"
    assert stored.updated == T0 + hours(5)
    assert stored.published == T0


def test_save_result_names_the_topics_whose_articles_changed(storage, make_article):
    first = storage.save_articles([make_article("a", topics=("security",))])
    moved = storage.save_articles(
        [make_article("a", topics=("sports",), content_hash="hash-2")])
    again = storage.save_articles(
        [make_article("a", topics=("sports",), content_hash="hash-2")])

    assert first.topics == {"security"}
    assert moved.topics == {"security", "sports"}
    assert again.topics == frozenset()


def test_topic_articles_are_newest_first_and_limited(storage, make_article):
    storage.save_articles([make_article(str(i), published=T0 + hours(i)) for i in range(5)])
    storage.save_articles([make_article("other", topics=("sports",), published=T0 + hours(9))])

    found = storage.articles("security", limit=3)

    assert [a.key for a in found] == ["4", "3", "2"]


def test_topic_order_follows_the_kept_published_time_after_an_update(storage, make_article):
    storage.save_articles([make_article("old", published=T0),
                           make_article("mid", published=T0 + hours(1))])
    # An edit arrives with a later time; the article keeps its first publication time.
    storage.save_articles([make_article("old", content_hash="hash-2", published=T0 + hours(2))])

    found = storage.articles("security")

    assert [a.key for a in found] == ["mid", "old"]
    assert [a.published for a in found] == sorted((a.published for a in found), reverse=True)


def test_copies_stored_by_two_processes_at_once_make_one_story(storage_url, storage,
                                                               make_article):
    # Two workers, each with its own (empty) dedupe window, store one story from two outlets.
    other = Storage(storage_url)
    url = "https://news.example.org/story"
    first = make_article("a", source="one", url=url)
    second = make_article("b", source="two", url=url, published=T0 + hours(1))
    try:
        storage.save_articles(Deduper().assign([first], {}))
        result = other.save_articles(Deduper().assign([second], {}))
    finally:
        other.close()

    (story,) = storage.articles()
    assert (story.id, storage.article_count(), result.new) == (first.id, 2, 1)
    assert [c.name for c in story.reported_by] == ["two"]
    assert storage.article(second.id).dedupe.layer == "url"


def _leaders(storage: Storage, copies: list) -> dict[str, str]:
    """key -> the key of the canonical article of its cluster, for each of `copies`."""
    key_of = {a.id: a.key for a in copies}
    return {a.key: key_of[storage.article(a.id).dedupe.duplicate_of or a.id] for a in copies}


def _copies(make_article, shared: str, times: dict[str, float]) -> list:
    """One story as outlets named by `times` carried it, published `times` hours after T0:
    one URL and other texts, or one text at other URLs."""
    if shared == "url":
        return [make_article(key, source=key, url="https://news.example.org/story",
                             published=T0 + hours(h)) for key, h in times.items()]
    return [make_article(key, source=key, url=f"https://{key}.example.org/1", title="خبر",
                         content_html="<p>نص الخبر نفسه عن الأمن في المغرب.</p>",
                         published=T0 + hours(h)) for key, h in times.items()]


@pytest.mark.parametrize("shared", ["url", "text"])
@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_the_earliest_copy_leads_whichever_process_stored_first(storage, make_article, shared,
                                                                order):
    # Each copy stored by a process of its own, whose dedupe window missed the others.
    copies = _copies(make_article, shared, {"late": 2, "early": 0, "mid": 1})
    for i in order:
        storage.save_articles(Deduper().assign([copies[i]], {}), kind="feed")

    assert _leaders(storage, copies) == {"late": "early", "early": "early", "mid": "early"}
    [story] = storage.articles()
    assert sorted(c.name for c in story.reported_by) == ["late", "mid"]
    with storage.engine.connect() as conn:  # the first claimer keeps the key: one row
        holders = conn.execute(sa.select(story_keys.c.article_id)
                               .where(story_keys.c.kind == shared)).scalars().all()
    assert holders == [copies[order[0]].id]


@pytest.mark.parametrize("full_first", [True, False])
def test_a_much_more_complete_copy_leads_whichever_process_stored_first(
        storage, make_article, full_first):
    body = " ".join(f"كلمة{i}" for i in range(60))
    summary, full = _copies(make_article, "url", {"summary": 0, "full": 5})
    full = replace(full, content_html=f"<p>{body}</p>")
    for copy in ([full, summary] if full_first else [summary, full]):
        storage.save_articles(Deduper().assign([copy], {}), kind="feed")
    assert _leaders(storage, [summary, full]) == {"summary": "full", "full": "full"}


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_copies_of_one_moment_are_led_by_the_smaller_id(storage, make_article, order):
    copies = _copies(make_article, "text", {"one": 0, "two": 0})
    for i in order:
        storage.save_articles(Deduper().assign([copies[i]], {}), kind="feed")
    first = min(copies, key=lambda a: a.id).key
    assert _leaders(storage, copies) == {"one": first, "two": first}


def test_version_6_gives_each_url_to_its_earliest_article(db_path, make_article):
    """A version 5 database may hold two stories with one URL (beyond the window)."""
    url = f"sqlite:///{db_path}"
    storage = Storage(url)
    late, early = (make_article(k, url="https://news.example.org/x", published=T0 + hours(h))
                   for k, h in (("late", 9), ("early", 0)))
    for article in (late, early):
        storage.save_articles([replace(article, dedupe=dedupe_keys(
            article.url, article.title, article.content_html, article.summary))])
    with storage.engine.begin() as conn:  # as version 5 left them: two stories
        conn.execute(articles.update().values(duplicate_of=None, dedupe_layer=None))
        for later in ("story_keys", "partner_usage", "pending_rebuilds"):  # versions 6, 8, 9
            conn.execute(sa.text(f"DROP TABLE {later}"))
        conn.execute(sa.text("DROP INDEX ix_archived_topic_page"))  # version 10
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="5"))
    storage.close()

    upgraded = Storage(url)
    with upgraded.engine.connect() as conn:
        holders = conn.execute(sa.select(story_keys.c.kind, story_keys.c.article_id)).all()
    assert sorted(holders) == [("text", early.id), ("text", late.id), ("url", early.id)]
    assert len(upgraded.articles()) == 2  # nothing merged by the upgrade
    upgraded.close()


def test_a_topic_waiting_for_its_rebuild_keeps_its_time_until_taken(storage):
    assert storage.request_rebuilds({"security"}, T0) == {"security"}
    assert storage.request_rebuilds({"security", "sports"}, T0 + hours(1)) == {"sports"}
    assert storage.take_due_rebuilds(T0) == {"security"}  # sports is not due yet
    assert storage.request_rebuilds({"security"}, T0 + hours(2)) == {"security"}  # anew
    assert storage.take_due_rebuilds(T0 + hours(2)) == {"security", "sports"}
    assert storage.take_due_rebuilds(T0 + hours(9)) == set()


def _as_version_9(conn) -> None:
    """The database as version 9 left it: publishing's indexes as they were then."""
    conn.execute(sa.text("DROP INDEX ix_archived_topic_page"))
    conn.execute(sa.text("DROP INDEX ix_article_topics_topic_published"))
    conn.execute(sa.text("CREATE INDEX ix_article_topics_topic_published "
                         "ON article_topics (topic, published)"))
    conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="9"))


def test_version_9_adds_the_pending_rebuilds(storage_url, storage):
    with storage.engine.begin() as conn:  # as version 8 left it
        _as_version_9(conn)
        pending_rebuilds.drop(conn)
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="8"))
    storage.close()

    upgraded = Storage(storage_url)
    try:
        assert _meta(storage_url)["schema_version"] == str(SCHEMA_VERSION)
        assert upgraded.request_rebuilds({"security"}, T0) == {"security"}
    finally:
        upgraded.close()


def test_version_10_indexes_what_a_build_reads(storage_url, storage, make_article):
    storage.save_articles([make_article("a", topics=("security",))])
    with storage.engine.begin() as conn:
        _as_version_9(conn)
    storage.close()

    upgraded = Storage(storage_url)
    try:
        indexes = {table: {i["name"]: i["column_names"] for i in
                           sa.inspect(upgraded.engine).get_indexes(table)}
                   for table in ("article_topics", "archived")}
        assert indexes["article_topics"]["ix_article_topics_topic_published"] == [
            "topic", "published", "article_id"]
        assert indexes["archived"]["ix_archived_topic_page"] == ["topic", "page"]
        assert [a.key for a in upgraded.articles("security")] == ["a"]
    finally:
        upgraded.close()
