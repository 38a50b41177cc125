"""Feed rebuilds of a distributed installation, debounced per topic through storage.

The poll and rebuild tasks run as a worker runs them (their own storage, fetcher and
tagger), on a real PostgreSQL and broker; the rebuilds they ask for are queued on the
broker, where the tests count them, and run here once due. (A worker killed before its
rebuild ran: tests/test_distributed.py.)
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from amqp.exceptions import ChannelError
from conftest import (
    RSS_TYPE,
    SECURITY_BODY,
    SECURITY_TITLE,
    rss_feed,
    rss_item,
    sports_feed,
    waiting_rebuilds,
)
from kombu import Connection

from feeds.config import Settings, load_settings
from feeds.model import Source
from feeds.publish import feed_path, topic_fingerprint
from feeds.tasks import _worker, configure, poll_task, rebuild_task
from storage import Storage

DELAY = 3  # seconds from a topic's first change to its rebuild


def _settings(pg_url: str, broker_url: str, queue: str) -> Settings:
    shipped = load_settings()
    return replace(shipped, storage_url=pg_url, workers=replace(
        shipped.workers, broker_url=broker_url, queue=queue, rebuild_delay=DELAY))


def _as_a_worker(settings: Settings) -> None:
    """Make this process a worker of `settings`: the tasks' storage, fetcher and tagger."""
    configure(settings)
    _worker.cache_clear()
    _worker()


@pytest.fixture
def settings(pg_url, broker_url, broker_queue) -> Iterator[Settings]:
    settings = _settings(pg_url, broker_url, broker_queue)
    _as_a_worker(settings)
    yield settings
    _worker().storage.close()
    _worker().fetcher.close()
    _worker.cache_clear()


@pytest.fixture
def storage(settings) -> Iterator[Storage]:
    storage = Storage(settings.storage_url)
    yield storage
    storage.close()


def _security_feed(n: int) -> bytes:
    return rss_feed(rss_item(f"urn:outlet{n}:1", f"{SECURITY_TITLE} ({n})", SECURITY_BODY,
                             f"https://outlet{n}.example.org/1",
                             datetime.now(UTC) - timedelta(hours=1)))


def _serve(httpserver, storage: Storage, name: str, body: bytes) -> None:
    httpserver.expect_request(f"/{name}").respond_with_data(body, content_type=RSS_TYPE)
    storage.add_source(Source(name=name, url=httpserver.url_for(f"/{name}")))


def _queued(settings: Settings) -> int:
    """Tasks waiting in the test's queue (one not declared yet holds none)."""
    with Connection(settings.workers.broker_url) as conn:
        try:
            return conn.default_channel.queue_declare(settings.workers.queue,
                                                      passive=True).message_count
        except ChannelError:
            return 0


def _built(settings: Settings, storage: Storage, topic: str) -> bool:
    """Whether the topic's stored feed was built from what storage holds now."""
    expected = topic_fingerprint(settings, settings.topic(topic),
                                 storage.articles(topic, settings.items_per_feed))
    return storage.built_from().get(feed_path(topic, "atom")) == expected


def _rebuild_when_due(storage: Storage, topic: str) -> str:
    """Run a rebuild task here once `topic`'s rebuild is due, as a worker runs it."""
    wait = (waiting_rebuilds(storage)[topic] - datetime.now(UTC)).total_seconds()
    time.sleep(max(0.0, wait) + 0.1)
    return rebuild_task.apply().get()


def _poll_in_a_worker(settings: Settings, name: str, together) -> None:
    """A worker process of its own: ready, then polls `name` with the others."""
    _as_a_worker(settings)
    together.wait()
    poll_task.apply(args=(name,)).get()


def test_many_polls_of_one_topic_within_the_delay_build_it_once(settings, storage,
                                                                 httpserver):
    names = [f"outlet{n}" for n in range(3)]
    for n, name in enumerate(names):
        _serve(httpserver, storage, name, _security_feed(n))
    context = multiprocessing.get_context("spawn")
    together = context.Barrier(len(names))
    workers = [context.Process(target=_poll_in_a_worker, args=(settings, name, together))
               for name in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * len(names)

    assert "security" in waiting_rebuilds(storage)
    assert _queued(settings) == 1  # three workers stored in it: one rebuild queued
    assert not _built(settings, storage, "security")
    built = _rebuild_when_due(storage, "security")
    assert "security" in built.split(":")[0]
    assert _built(settings, storage, "security")
    assert waiting_rebuilds(storage) == {}
    assert rebuild_task.apply().get() == "no rebuild due"


def test_topics_are_debounced_independently(settings, storage, httpserver):
    _serve(httpserver, storage, "police", _security_feed(1))
    _serve(httpserver, storage, "stadium", sports_feed())
    _serve(httpserver, storage, "wire", _security_feed(2))

    poll_task.apply(args=("police",)).get()
    first = set(waiting_rebuilds(storage))
    time.sleep(DELAY / 2)
    poll_task.apply(args=("stadium",)).get()
    later = set(waiting_rebuilds(storage)) - first
    poll_task.apply(args=("wire",)).get()  # its topics are waiting already

    assert "security" in first and "sports" in later
    assert set(waiting_rebuilds(storage)) == first | later
    assert _queued(settings) == 2  # one for each first change
    _rebuild_when_due(storage, "security")
    assert set(waiting_rebuilds(storage)) == later  # not due yet: waiting still
    assert _built(settings, storage, "security") and not _built(settings, storage, "sports")
    _rebuild_when_due(storage, "sports")
    assert waiting_rebuilds(storage) == {}
    assert _built(settings, storage, "sports")
