"""PostgreSQL only: two processes storing overlapping batches at once make each article once."""

from __future__ import annotations

import multiprocessing
import random
from datetime import timedelta

import sqlalchemy as sa
from conftest import T0, run_together

from feeds.clusters import Deduper
from feeds.model import Article
from storage import Storage
from storage.schema import articles

WORDS = ("الأمن", "المغرب", "الشرطة", "فيينا", "الرباط", "تعاون", "دولي", "مكافحة", "الإرهاب",
         "الاقتصاد", "البرلمان", "الحكومة", "الانتخابات", "الرياضة", "المنتخب", "الطقس")


def _article(n: int, source: str) -> Article:
    """Story n as `source` carried it: one URL per story, a text of its own (no near matches)."""
    words = random.Random(n).choices(WORDS, k=60)
    body = " ".join(f"{w}{n}" for w in words)
    return Article(source=source, key=f"story-{n}", title=f"خبر رقم {n}",
                   content_html=f"<p>{body}</p>", summary="", language="ar",
                   published=T0 + timedelta(minutes=n), updated=T0 + timedelta(minutes=n),
                   url=f"https://news.example.org/{n}", topics=("security",),
                   content_hash=f"{source}-{n}")


def _ingest(url: str, stories: list[tuple[int, str]], start) -> None:
    """One worker: its own dedupe window, batches of 10 as the pipeline stores them."""
    storage = Storage(url)
    deduper = Deduper()
    start.wait()
    for first in range(0, len(stories), 10):
        batch = [_article(n, source) for n, source in stories[first:first + 10]]
        stored = storage.dedupe_keys(a.id for a in batch)
        storage.save_articles(deduper.assign(batch, stored), kind="feed")
    storage.close()


def test_two_processes_storing_the_same_articles_store_each_once(pg_url):
    Storage(pg_url).close()  # the schema exists before the workers race on the rows
    one = [(n, "paper") for n in range(60)]
    two = [(n, "paper") for n in range(79, 19, -1)] + [(n, "wire") for n in range(40)]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_ingest, args=(pg_url, stories, start))
               for stories in (one, two)]
    run_together(workers)

    storage = Storage(pg_url)
    with storage.engine.connect() as conn:
        stored = conn.execute(sa.select(articles.c.source, articles.c.key)).all()
    stories = storage.articles(limit=1000)
    storage.close()
    assert len(stored) == len(set(stored)) == 80 + 40
    assert sorted(a.url for a in stories) == sorted(f"https://news.example.org/{n}"
                                                    for n in range(80))
    assert sum(len(a.reported_by) for a in stories) == 40  # every wire copy credited
