"""Distributed ingest throughput: 1, 2 and 4 Celery worker processes against one process.

The same N local feeds (default 200; generated Arabic RSS in which each story is carried by
three feeds, so a third of the work is duplicates) are ingested

- on the embedded default: SQLite, one process, `poll_all` as `nashra ingest` runs it;
- by W `nashra run --role worker --concurrency 1` processes (W = 1, 2, 4) on PostgreSQL,
  one poll task per source queued as the active scheduler queues them.

Each distributed run gets a new database. Its workers are started and warmed (their first
task builds the tagger) before the clock starts; the clock stops when every source has
been polled. Feed rebuilds are held off (`rebuild_delay` of an hour) so both sides do the
same work. Each run's stored articles and stories are printed beside the embedded run's.

Needs PostgreSQL ($NASHRA_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test,
a database to connect to while creating the bench's own) and Redis or RabbitMQ
($NASHRA_BENCH_BROKER_URL, default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from amqp.exceptions import ChannelError
from bench_sources import FeedServer, add_sources, settings_for
from corpus import TextMaker, load_words, rss_feed
from kombu import Connection

from feeds.config import default_config_text, load_settings
from feeds.polling import make_fetcher, poll_all
from feeds.tasks import TaskQueue
from storage import Storage

PG_URL = os.environ.get("NASHRA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BROKER_URL = os.environ.get("NASHRA_BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
NASHRA = Path(sys.executable).parent / "nashra"
INTERVAL = 3600  # one poll per source in a run


def overlapping_feeds(count: int, items: int) -> list[bytes]:
    """Feed f carries stories 5f .. 5f+items-1: with 15 items, each story is in 3 feeds."""
    rng = random.Random(2026)
    maker = TextMaker(load_words(), rng)
    stories = 5 * count + items
    titles = [maker.phrase(9) for _ in range(stories)]
    bodies = [maker.phrase(150) for _ in range(stories)]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return [rss_feed(f, [(titles[s], f"https://example.org/story/{s}", f"urn:feed{f}:{s}",
                          now - timedelta(minutes=s), bodies[s])
                         for s in range(5 * f, 5 * f + items)])
            for f in range(count)]


def stored(url: str) -> tuple[int, int]:
    storage = Storage(url)
    try:
        return storage.article_count(), len(storage.articles(limit=10**6))
    finally:
        storage.close()


def embedded(server: FeedServer, feeds: int, folder: Path) -> tuple[float, tuple[int, int]]:
    settings = settings_for(folder, load_settings().fetch.concurrency, INTERVAL)
    storage = Storage(settings.storage_url)
    add_sources(storage, server, feeds, INTERVAL)
    with make_fetcher(settings) as fetcher:
        start = time.perf_counter()
        poll_all(settings, storage, fetcher)
        seconds = time.perf_counter() - start
    storage.close()
    return seconds, stored(settings.storage_url)


class Database:
    """A PostgreSQL database of the bench's own, C collation, dropped on close."""

    def __init__(self):
        self.admin = sa.create_engine(sa.make_url(PG_URL).set(drivername="postgresql+psycopg"),
                                      isolation_level="AUTOCOMMIT")
        self.name = f"nashra_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.name} TEMPLATE template0 "
                                 "LC_COLLATE 'C' LC_CTYPE 'C'")
        self.url = self.admin.url.set(database=self.name).render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {self.name} WITH (FORCE)")
        self.admin.dispose()


def distributed(server: FeedServer, feeds: int, workers: int, folder: Path
                ) -> tuple[float, tuple[int, int]]:
    database, queue = Database(), f"nashra-bench-{uuid.uuid4().hex[:6]}"
    config = folder / f"workers-{workers}.toml"
    config.write_text(default_config_text()
                      .replace('url = "sqlite:///var/nashra.db"', f'url = "{database.url}"')
                      .replace('# broker_url = "redis://127.0.0.1:6379/0"',
                               f'broker_url = "{BROKER_URL}"')
                      .replace('queue = "nashra"', f'queue = "{queue}"')
                      .replace("rebuild_delay = 5", "rebuild_delay = 3600"), "utf-8")
    try:
        seconds = timed_run(config, folder, server, feeds, workers, queue)
        return seconds, stored(database.url)
    finally:
        with Connection(BROKER_URL) as conn:
            conn.default_channel.queue_delete(queue)
        database.close()


def timed_run(config: Path, folder: Path, server: FeedServer, feeds: int, workers: int,
              queue: str) -> float:
    """Seconds from the first poll queued to the last source polled, by `workers` workers."""
    settings = replace(load_settings(config), seeds_dir=folder / "no-seeds")
    storage = Storage(settings.storage_url)
    add_sources(storage, server, feeds, INTERVAL)
    tasks = TaskQueue(settings, storage)
    processes = [subprocess.Popen([str(NASHRA), "-q", "--config", str(config), "run", "--role",
                                   "worker", "--concurrency", "1"], cwd=folder,
                                  start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for _ in range(workers)]
    try:
        warm_up(tasks, queue, 4 * workers)
        sources = storage.sources()
        start = time.perf_counter()
        for source in sources:
            tasks.poll(source)
        while any(s.last_fetch is None for s in storage.sources()):
            time.sleep(0.1)
        return time.perf_counter() - start
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait()
        storage.close()


def warm_up(tasks: TaskQueue, queue: str, count: int) -> None:
    """Polls of a source that does not exist, until the queue is drained: each worker has
    connected and built its tagger (its first task's work), and the clock has not started."""
    from feeds.tasks import poll_task

    for _ in range(count):
        poll_task.delay("warm-up: no such source")
    while waiting(queue):
        time.sleep(0.2)
    time.sleep(3)  # the last ones taken are still building their tagger


def waiting(queue: str) -> int:
    """Messages in `queue`; one that does not exist yet (Redis) holds none."""
    with Connection(BROKER_URL) as conn:
        try:
            return conn.default_channel.queue_declare(queue, passive=True).message_count
        except ChannelError:
            return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=15, help="items per feed")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    bodies = overlapping_feeds(args.feeds, args.items)
    server = FeedServer(bodies)
    articles = args.feeds * args.items
    print(f"{args.feeds} local feeds x {args.items} items ({articles} articles, each story in "
          f"3 feeds); {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as folder:
        runs = [("embedded: SQLite, 1 process, poll_all",
                 *embedded(server, args.feeds, Path(folder)))]
        for workers in args.workers:
            runs.append((f"PostgreSQL + {workers} worker process{'es' * (workers > 1)}",
                         *distributed(server, args.feeds, workers, Path(folder))))
    server.close()
    base = runs[0][1]
    print(f"{'':40} {'seconds':>8} {'articles/s':>11} {'vs embedded':>12}  stored (articles, "
          "stories)")
    for name, seconds, result in runs:
        print(f"{name:40} {seconds:8.2f} {articles / seconds:11.0f} {base / seconds:11.2f}x  "
              f"{result}{'' if result == runs[0][2] else '  DIFFERS'}")


if __name__ == "__main__":
    main()
