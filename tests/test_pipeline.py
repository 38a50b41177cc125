"""The pipeline on real seed files and a real SQLite file: ingest, re-ingest, edit, publish."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import pytest
from conftest import SEED_TITLE, T0

from feeds.pipeline import build_documents, ingest_seeds
from storage import Storage

pytestmark = pytest.mark.both_backends

SEED_NAME = "000_d93c5d4a86fd5825.txt"
GOOD_SEED = "عملية أمنية جديدة في الدار البيضاء\n\nأعلنت الشرطة عن تفكيك شبكة لتهريب المخدرات.\n"


def test_the_shipped_seed_becomes_one_tagged_article(settings, storage):
    report = ingest_seeds(settings, storage)

    (article,) = storage.articles()
    assert report.new == 1
    assert article.title == SEED_TITLE
    assert {"security", "terrorism", "morocco"} <= set(article.topics)


def test_ingesting_twice_makes_no_duplicate(settings, storage):
    ingest_seeds(settings, storage)
    second = ingest_seeds(settings, storage)

    assert (second.new, second.unchanged) == (0, 1)
    assert storage.article_count() == 1


def test_editing_a_seed_updates_its_article(settings, storage, seeds_dir):
    ingest_seeds(settings, storage)
    (before,) = storage.articles()
    path = seeds_dir / SEED_NAME
    later = path.stat().st_mtime + 3600
    path.write_text("عنوان معدل عن الأمن في المغرب\n\nنص جديد عن الشرطة والأمن في الرباط.\n",
                    "utf-8")
    os.utime(path, (later, later))

    report = ingest_seeds(settings, storage)

    (after,) = storage.articles()
    assert report.updated == 1
    assert after.id == before.id
    assert after.title == "عنوان معدل عن الأمن في المغرب"
    assert after.updated > before.updated
    assert after.published == before.published


def test_removing_a_seed_keeps_its_article(settings, storage, seeds_dir):
    ingest_seeds(settings, storage)
    (seeds_dir / SEED_NAME).unlink()

    ingest_seeds(settings, storage)

    assert [a.title for a in storage.articles()] == [SEED_TITLE]


def test_bad_seeds_are_skipped_with_one_log_line_each(settings, storage, write_seed, caplog):
    bad = [
        write_seed("empty.txt", b""),
        write_seed("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10),
        write_seed("latin1.txt", b"Titre\n\nS\xe9curit\xe9 au Maroc\n"),
        write_seed("untitled.txt", "---\nauthor: هيئة التحرير\n---\n\n\n"),
    ]
    huge = settings.seeds_dir / "huge.txt"
    with huge.open("wb") as file:
        file.truncate(50 * 1024 * 1024)
    bad.append(huge)
    write_seed("good.txt", GOOD_SEED)

    with caplog.at_level(logging.WARNING):
        report = ingest_seeds(settings, storage)

    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for path in bad:
        assert sum(path.name in m for m in messages) == 1, (path.name, messages)
    assert report.skipped == len(bad)
    titles = {a.title for a in storage.articles()}
    assert titles == {SEED_TITLE, "عملية أمنية جديدة في الدار البيضاء"}


def test_a_seed_just_over_max_bytes_is_skipped(settings, storage, write_seed, caplog):
    settings = replace(settings, max_seed_bytes=1000)
    write_seed("long.txt", GOOD_SEED + "نص طويل. " * 200)

    with caplog.at_level(logging.WARNING):
        ingest_seeds(settings, storage)

    assert sum("long.txt" in r.getMessage() for r in caplog.records) == 1
    assert "عملية أمنية جديدة في الدار البيضاء" not in {a.title for a in storage.articles()}


def test_build_rebuilds_nothing_when_nothing_changed(settings, storage):
    ingest_seeds(settings, storage)
    assert build_documents(settings, storage)

    assert build_documents(settings, storage) == []


def test_build_rebuilds_only_the_topics_that_changed(settings, storage, make_article):
    ingest_seeds(settings, storage)
    build_documents(settings, storage)
    storage.save_articles([make_article("goal", topics=("sports",), published=T0)])

    rebuilt = {d.path for d in build_documents(settings, storage)}

    assert {"topics/sports.rss", "topics/sports.atom"} <= rebuilt
    assert not rebuilt & {"topics/security.rss", "topics/security.atom",
                          "topics/terrorism.rss", "topics/morocco.atom"}


def test_a_restart_rebuilds_the_same_bytes(settings, storage, make_article):
    ingest_seeds(settings, storage)
    storage.save_articles([make_article("x", title="BCIJ يفكك خلية إرهابية")])
    first = {d.path: d.body for d in build_documents(settings, storage)}
    storage.close()

    restarted = Storage(settings.storage_url)
    try:
        again = {d.path: d.body for d in build_documents(settings, restarted, force=True)}
    finally:
        restarted.close()

    assert again.keys() == first.keys()
    for path, body in first.items():
        assert again[path] == body, path
