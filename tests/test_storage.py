"""Storage on real SQLite files: schema, WAL, atomic batches, updates, topic queries."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from conftest import T0, hours

from storage import SCHEMA_VERSION, SaveResult, Storage


def _meta(db_path) -> dict[str, str]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT key, value FROM meta"))


def test_schema_version_is_recorded_in_meta(storage, db_path):
    assert _meta(db_path)["schema_version"] == str(SCHEMA_VERSION)


def test_reopening_keeps_data_and_does_not_migrate_again(settings, storage, db_path,
                                                         make_article):
    storage.save_articles([make_article("a")])
    before = _meta(db_path)
    storage.close()

    reopened = Storage(settings.storage_url)
    try:
        assert [a.key for a in reopened.articles()] == ["a"]
        assert _meta(db_path) == before
    finally:
        reopened.close()


def test_sqlite_runs_in_wal_mode(storage, db_path):
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
