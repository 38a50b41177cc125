"""Distributed ingest: real `nashra run --role ...` processes on a real PostgreSQL and broker.

Two workers and a scheduler ingest local feeds with overlapping articles (the same story in
three feeds, by URL or by text, each copy published a second before the previous feed's)
and end with what one `nashra ingest` process stores: the same articles, the same copy
leading each story, the same topics and topic feeds; killing a worker or the active
scheduler mid-run changes none of it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser
import pytest
import requests
import sqlalchemy as sa
from conftest import (
    NASHRA,
    SECURITY_TITLE,
    config_text,
    free_port,
    nashra_env,
    rfc822,
    waiting_rebuilds,
)

from feeds.config import ConfigError, default_config_text, load_settings, parse_settings
from feeds.polling import sync_config_sources
from feeds.publish import feed_path, topic_fingerprint
from feeds.tasks import TaskQueue, configure
from storage import Storage
from storage.schema import article_topics, articles

FEEDS = 200
ITEMS = 6  # feed f carries stories 2f .. 2f+5: each story is in three feeds
WORDS = ("الأمن", "المغرب", "فيينا", "الرباط", "تعاون", "دولي", "مكافحة", "الاقتصاد",
         "البرلمان", "الحكومة", "الانتخابات", "الرياضة", "المنتخب", "الطقس", "الجامعة")
DONE_WITHIN = 60  # seconds for a run to store everything and publish it
SETTINGS = load_settings()  # the topics and feed size of every config here


def _feed(f: int, now: datetime) -> bytes:
    """Feed f: its copy of a story is published a second before feed f - 1's, so the copies
    are stored (polled in feed order, by one process or by workers at once) in the opposite
    order to their publication."""
    items = []
    for s in range(2 * f, 2 * f + ITEMS):
        body = " ".join(f"{w}{s}" for w in random.Random(s).choices(WORDS, k=50))
        title = f"{SECURITY_TITLE} رقم {s}" if s % 3 == 0 else f"خبر رقم {s}"
        # Every fifth story is the same text at each outlet's own URL; the others share one.
        link = f"https://outlet{f}.example.org/{s}" if s % 5 == 0 else (
            f"https://news.example.org/story/{s}")
        items.append(f"<item><title>{title}</title><link>{link}</link>"
                     f"<guid>urn:feed{f}:story{s}</guid><description>{body}</description>"
                     f"<pubDate>{rfc822(now - timedelta(minutes=s, seconds=f))}</pubDate>"
                     "</item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>مصدر {f}</title><link>https://outlet{f}.example.org/</link>"
            f"<language>ar</language>{''.join(items)}</channel></rss>").encode()


class FeedServer:
    """/feed/N from memory on 127.0.0.1, each answer `delay` seconds late (polls in flight)."""

    def __init__(self, bodies: list[bytes], delay: float = 0.0):
        self.delay, self.fetches = delay, Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(server.delay)
                n = int(self.path.rsplit("/", 1)[-1])
                server.fetches[n] += 1
                body = bodies[n]
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/feed/{n}"


@pytest.fixture(scope="module")
def feed_server():
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    server = FeedServer([_feed(f, now) for f in range(FEEDS)])
    yield server
    server.httpd.shutdown()


def _config(folder: Path, storage_url: str, server: FeedServer, broker: str = "",
            queue: str = "", rebuild_delay: int = 1) -> Path:
    seeds = folder / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    text = config_text(storage_url, seeds)
    if broker:
        text = text.replace('# broker_url = "redis://127.0.0.1:6379/0"',
                            f'broker_url = "{broker}"')
        text = text.replace("rebuild_delay = 5", f"rebuild_delay = {rebuild_delay}")
        text = text.replace('queue = "nashra"', f'queue = "{queue}"')
        text = text.replace("visibility_timeout = 300", "visibility_timeout = 5")
    sources = "".join(f'\n[[sources]]\nurl = "{server.url(f)}"\nname = "feed-{f:03d}"\n'
                      for f in range(FEEDS))
    path = folder / "nashra.toml"
    path.write_text(text + sources, "utf-8")
    return path


def _snapshot(url: str) -> dict:
    """What an ingest stored and published: each article with its cluster's canonical article,
    each cluster's topics, and each topic feed's entries (ids, links, bodies with credits)."""
    storage = Storage(url)
    with storage.engine.connect() as conn:
        rows = conn.execute(sa.select(articles.c.id, articles.c.content_hash,
                                      articles.c.duplicate_of)).all()
        tags = conn.execute(sa.select(article_topics.c.article_id, article_topics.c.topic)).all()
    published = {d.path: d.body for d in storage.documents()}
    storage.close()
    topics, clusters = defaultdict(set), defaultdict(set)
    for article_id, topic in tags:
        topics[article_id].add(topic)
    for article_id, _, root in rows:
        clusters[root or article_id] |= topics[article_id]
    feeds = {topic.slug: [(e.id, e.link, e.content[0].value) for e in feedparser.parse(
        published[feed_path(topic.slug, "atom")]).entries] for topic in SETTINGS.topics}
    return {"articles": set(rows), "clusters": dict(clusters), "feeds": feeds}


def _published(url: str, slugs: Collection[str] | None = None) -> bool:
    """Whether the stored feeds of these topics (None: of every topic) were built from what
    storage holds now."""
    storage = Storage(url)
    built = storage.built_from()
    current = all(
        built.get(feed_path(topic.slug, "atom")) == topic_fingerprint(
            SETTINGS, topic, storage.articles(topic.slug, SETTINGS.items_per_feed))
        for topic in SETTINGS.topics if slugs is None or topic.slug in slugs)
    storage.close()
    return current


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, feed_server) -> dict:
    """What `nashra ingest`, one process on the embedded default, stores from the feeds."""
    folder = tmp_path_factory.mktemp("single")
    url = f"sqlite:///{folder / 'nashra.db'}"
    config = _config(folder, url, feed_server)
    done = subprocess.run([str(NASHRA), "--config", str(config), "ingest"], cwd=folder,
                          env=nashra_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = _snapshot(url)
    assert len(expected["articles"]) == FEEDS * ITEMS
    assert len(expected["clusters"]) == 2 * FEEDS + ITEMS - 2  # every story once
    assert _led_by_their_earliest_copy(url)
    return expected


def _led_by_their_earliest_copy(url: str) -> bool:
    """Whether each story is led by its copy in the last feed carrying it, the earliest."""
    leader = articles.alias("leader")
    storage = Storage(url)
    with storage.engine.connect() as conn:
        later = conn.execute(sa.select(sa.func.count()).select_from(articles).join(
            leader, leader.c.id == articles.c.duplicate_of).where(
            articles.c.source > leader.c.source)).scalar_one()
    storage.close()
    return later == 0


class Processes:
    """`nashra run --role ...` processes, each in its own process group, logs in files."""

    def __init__(self, folder: Path, config: Path):
        self.folder, self.config, self.running, self.killed = folder, config, [], []

    def start(self, role: str, *args: str) -> subprocess.Popen:
        log = self.folder / f"{role}-{len(self.running)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(NASHRA), "--config", str(self.config), "run", "--role", role, *args],
                cwd=self.folder, env=nashra_env(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        process.log = log
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL to the role's whole process group (a worker's pool processes too)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.killed.append(process)

    def check(self) -> None:
        """Fail at once when a role exits that was not killed."""
        for process in self.running:
            if process not in self.killed and process.poll() is not None:
                raise AssertionError(f"{process.log.name} exited\n{self.logs()}")

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text()[-3000:]}" for p in self.running)


@pytest.fixture
def cluster(tmp_path, pg_url, feed_server, broker_url, broker_queue):
    Storage(pg_url).close()  # the schema exists before the processes race to make it
    processes = Processes(tmp_path, _config(tmp_path, pg_url, feed_server, broker_url,
                                            broker_queue))
    processes.url = pg_url
    yield processes
    processes.stop()


def _wait_for(check, what: str, processes: Processes, timeout: float = DONE_WITHIN):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        processes.check()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{processes.logs()}")
        time.sleep(0.25)
    return result


def _polled(url: str) -> int:
    storage = Storage(url)
    try:
        return sum(1 for s in storage.sources() if s.last_fetch)
    finally:
        storage.close()


def _finished(url: str) -> bool:
    return _polled(url) == FEEDS and _published(url)


def _active(process: subprocess.Popen) -> bool:
    return "scheduler: active" in process.log.read_text()


def test_two_workers_and_a_scheduler_store_and_serve_what_one_process_does(
        cluster, single_process, feed_server):
    feed_server.fetches.clear()
    port = free_port()
    web = cluster.start("web", "--port", str(port))
    for _ in range(2):
        cluster.start("worker", "--concurrency", "1")
    cluster.start("scheduler")
    _wait_for(lambda: _finished(cluster.url), "ingest and rebuild", cluster)
    assert _snapshot(cluster.url) == single_process
    assert set(feed_server.fetches.values()) == {1}  # never twice, however often queued

    storage = Storage(cluster.url)
    stored = {d.path: d for d in storage.documents()}["topics/security.atom"]
    storage.close()

    def served() -> bool:
        response = requests.get(f"http://127.0.0.1:{port}/topics/security.atom", timeout=5)
        return response.status_code == 200 and response.content == stored.body

    _wait_for(served, "the web role serving the rebuilt feed", cluster, timeout=15)
    assert web.poll() is None


def test_killing_a_worker_and_the_active_scheduler_mid_run_loses_nothing(
        cluster, single_process, feed_server):
    feed_server.delay = 0.05  # polls last long enough to be killed in flight
    try:
        first = cluster.start("scheduler")
        _wait_for(lambda: _active(first), "a scheduler active", cluster, timeout=30)
        standby = cluster.start("scheduler")
        victim = cluster.start("worker", "--concurrency", "1")
        cluster.start("worker", "--concurrency", "1")
        _wait_for(lambda: _polled(cluster.url) >= FEEDS // 4, "a quarter polled", cluster)
        cluster.kill(victim)
        _wait_for(lambda: _polled(cluster.url) >= FEEDS // 2, "half polled", cluster)
        cluster.kill(first)
        _wait_for(lambda: _active(standby), "the standby taking over", cluster, timeout=10)
        _wait_for(lambda: _finished(cluster.url), "ingest and rebuild",
                  cluster)
    finally:
        feed_server.delay = 0.0
    assert _snapshot(cluster.url) == single_process


def test_a_rebuild_asked_for_by_a_killed_worker_is_built_by_another(
        tmp_path, pg_url, feed_server, broker_url, broker_queue):
    # The worker that polled a source dies before the rebuild it asked for is due: the
    # request waits in storage and the task in the broker, and another worker builds it.
    # Whether the victim had taken the task yet is a race: given again, the task builds
    # every topic; taken first by the other worker, it builds the topics asked for.
    Storage(pg_url).close()
    config = _config(tmp_path, pg_url, feed_server, broker_url, broker_queue, rebuild_delay=3)
    settings, storage = load_settings(config), Storage(pg_url)
    processes = Processes(tmp_path, config)
    try:
        sync_config_sources(settings, storage)
        victim = processes.start("worker", "--concurrency", "1")
        TaskQueue(settings, storage).poll(storage.source("feed-000"))
        asked = _wait_for(lambda: waiting_rebuilds(storage), "a rebuild asked for", processes)
        processes.kill(victim)
        assert "security" in asked and not _published(pg_url, asked)
        processes.start("worker", "--concurrency", "1")
        _wait_for(lambda: not waiting_rebuilds(storage) and _published(pg_url, asked),
                  "the rebuild built by the other worker", processes)
    finally:
        processes.stop()
        storage.close()


def test_distributed_roles_refuse_sqlite(tmp_path, nashra, feed_server):
    sqlite = _config(tmp_path, f"sqlite:///{tmp_path / 'nashra.db'}", feed_server)
    refused = nashra("--config", str(sqlite), "run", "--role", "worker")
    assert refused.returncode == 1
    assert "--role worker needs PostgreSQL storage" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_broker_is_a_redis_or_rabbitmq_url_and_its_absence_is_named():
    with pytest.raises(ConfigError, match=r"workers\.broker_url: 'http://q' must be a Redis or "):
        parse_settings(default_config_text().replace('# broker_url = "redis://127.0.0.1:6379/0"',
                                                      'broker_url = "http://q"'), "t.toml")
    with pytest.raises(ConfigError, match=r"workers\.broker_url is missing; .* need a Celery"):
        configure(SETTINGS)
