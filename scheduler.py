"""APScheduler wiring for `nashra run` (also `python scheduler.py`): jobs and the main loop.

It holds no business logic: each job calls pipeline stages, and the jobs share only the
storage, one HTTP fetcher and a flag saying the feeds need rebuilding. `run` is the whole
of Nashra in one process (`--role all`); `run_scheduler` and `run_web` are the scheduler
and web roles of a distributed installation, whose workers are in feeds/tasks.py.

    seeds    every [seeds] scan_interval: ingest the seeds folder
    source:* one job per enabled feed source, rescheduled after each poll from the
             source's own next-poll time (adaptive interval, backoff, Retry-After)
    sources  every 30 s: jobs follow sources added, removed or disabled while running
    publish  every 5 s: rebuild the feeds whose articles changed, then serve them
"""

from __future__ import annotations

import functools
import gc
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from feeds.config import Settings
from feeds.partners import PartnerDesk
from feeds.pipeline import build_documents, build_tag, ingest_seeds
from feeds.polling import (
    FeedReader,
    make_fetcher,
    poll_source,
    reader_processes,
    sync_config_sources,
)
from feeds.server import (
    DocumentCache,
    FastPath,
    Workers,
    create_app,
    is_loopback,
    make_server,
)
from feeds.websub import HubPinger, changed_feed_urls
from storage import Storage, StorageError

if TYPE_CHECKING:
    from feeds.tasks import TaskQueue

log = logging.getLogger("nashra.scheduler")

SYNC_SECONDS = 30
PUBLISH_SECONDS = 5
START_SPREAD_SECONDS = 30  # first polls of overdue sources are spread over this long
SOURCE_JOB = "source:"
SCHEDULER_LOCK = "nashra:scheduler"  # held by the active scheduler of the scheduler role
TAKEOVER_SECONDS = 1.0  # how often a standby scheduler tries the lock
FOLLOW_SECONDS = 2.0  # how often a server process of its own looks for rebuilt documents


class Runtime:
    """The scheduler of one `nashra run` process and the state its jobs share.

    With a `queue` (the scheduler role, feeds/tasks.py) due sources and feed rebuilds go to
    Celery workers; without one this process polls and publishes itself, and serves `cache`
    (None when server processes of their own serve: `--workers N`).
    """

    def __init__(self, settings: Settings, storage: Storage, cache: DocumentCache | None,
                 queue: TaskQueue | None = None):
        self.settings, self.storage, self.cache, self.queue = settings, storage, cache, queue
        self.partners = PartnerDesk(settings, storage, cache) if cache else None
        self.hub = HubPinger(settings.websub_hub) if settings.websub_hub and not queue else None
        self.fetcher = make_fetcher(settings)
        # Its taggers take a while to build: only a process that polls needs a reader.
        self.reader = None if queue else FeedReader(settings, reader_processes(settings),
                                                     self.fetcher)
        self.fetching: set[str] = set()
        self.polls = 0  # polls completed (or queued) since start, for /status and benchmarks
        self._changed = threading.Event()
        self._rng = random.Random()
        # Queued polls wait in the broker, so overdue sources need no spreading there.
        self.start_spread = 0 if queue else START_SPREAD_SECONDS
        # Feed polls get their own bounded pool, so a slow source never delays the seeds
        # or publishing; coalescing and one instance per job keep a slow one from piling up.
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(2),
                       "fetch": ThreadPoolExecutor(settings.fetch.concurrency)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        gc.freeze()  # what the process started with outlives every job: spare the collector
        add = self.scheduler.add_job
        now = datetime.now(UTC)
        add(self.seeds_job, "interval", seconds=self.settings.scan_interval, id="seeds")
        add(self.sync_job, "interval", seconds=SYNC_SECONDS, id="sources", next_run_time=now)
        if not self.queue:
            add(self.publish_job, "interval", seconds=PUBLISH_SECONDS, id="publish")
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        if self.reader:
            self.reader.close()
        self.fetcher.close()
        if self.hub:
            self.hub.close()

    def seeds_job(self) -> None:
        self._note_change(ingest_seeds(self.settings, self.storage).topics)

    def _note_change(self, topics: set[str]) -> None:
        """Have the feeds of `topics` rebuilt: by the workers, or by the publish job here."""
        if not topics:
            return
        if self.queue:
            self.queue.rebuild(topics)
        else:
            self._changed.set()

    def publish_job(self) -> None:
        if self.partners:
            self.partners.reload()  # follows `nashra partners` while running
        if self._changed.is_set():
            self._changed.clear()
            changed = build_documents(self.settings, self.storage)
            if changed:
                if self.cache:
                    self.cache.reload()
                if self.hub:
                    self.hub.publish(changed_feed_urls(self.settings.base_url, changed))

    def sync_job(self) -> None:
        """Add a job for each enabled source that has none; drop jobs of the others."""
        sync_config_sources(self.settings, self.storage)
        wanted = {s.name: s for s in self.storage.sources(include_disabled=False)}
        scheduled = {job.id.removeprefix(SOURCE_JOB) for job in self.scheduler.get_jobs()
                     if job.id.startswith(SOURCE_JOB)}
        now = datetime.now(UTC)
        for name in wanted.keys() - scheduled:
            source = wanted[name]
            first = source.next_poll if source.next_poll and source.next_poll > now else (
                now + timedelta(seconds=self._rng.uniform(0, self.start_spread)))
            self.scheduler.add_job(self.source_job, self._trigger(source.interval or 3600),
                                   args=(name,), id=SOURCE_JOB + name, executor="fetch",
                                   name=f"poll {name}", next_run_time=first)
            log.debug("source %s: first poll at %s", name, first)
        for name in scheduled - wanted.keys():
            self.scheduler.remove_job(SOURCE_JOB + name)
            log.info("source %s: no longer polled", name)

    def source_job(self, name: str) -> None:
        source = self.storage.source(name)
        if source is None or not source.enabled:
            return  # the next sync drops the job
        self.fetching.add(name)
        try:
            report = self.queue.poll(source) if self.queue else poll_source(
                self.settings, self.storage, self.fetcher, source, self._rng, self.reader)
        finally:
            self.fetching.discard(name)
            self.polls += 1
        self._note_change(report.topics)
        if report.next_poll:
            delay = max(1.0, (report.next_poll - datetime.now(UTC)).total_seconds())
            with suppress(JobLookupError):  # removed while it ran: sync or shutdown
                self.scheduler.reschedule_job(SOURCE_JOB + name, trigger=self._trigger(delay))

    @staticmethod
    def _trigger(seconds: float) -> IntervalTrigger:
        # Jitter spreads sources that share an interval, so they do not fire together.
        return IntervalTrigger(seconds=max(1, seconds), jitter=min(300, seconds / 10),
                               timezone=UTC)

    def status(self) -> dict:
        return sources_status(self.storage, self.fetching, self.polls)


def sources_status(storage: Storage, fetching: Iterable[str] = (), polls: int = 0) -> dict:
    """Every source's state, for /status and the live status line; `fetching` and `polls`
    are what this process is doing and has done."""
    sources = storage.sources()
    now = datetime.now(UTC)
    return {
        "articles": storage.article_count(),
        "polls": polls,
        "fetching": sorted(fetching),
        "due": sum(1 for s in sources if s.enabled and (s.next_poll or now) <= now),
        "errors": sum(1 for s in sources if s.error_count),
        "sources": [_source_status(s) for s in sources],
    }


def _source_status(source) -> dict:
    fields = ("name", "url", "title", "enabled", "last_status", "last_error", "error_count",
              "item_count", "interval", "bozo")
    status = {name: getattr(source, name) for name in fields}
    for name in ("last_fetch", "next_poll"):
        moment = getattr(source, name)
        status[name] = moment.isoformat() if moment else None
    return status


def status_line(status: dict) -> str:
    return (f"sources {len(status['sources'])} · due {status['due']} · fetching "
            f"{len(status['fetching'])} · errors {status['errors']} · articles "
            f"{status['articles']}")


def _live_status(status: Callable[[], dict], stop: threading.Event) -> None:
    """Redraw one status line on the terminal every second until `stop` is set."""
    with tqdm(total=0, bar_format="{desc}", file=sys.stderr, leave=False) as line:
        while not stop.wait(1.0):
            line.set_description_str(status_line(status()))


def worker_app(settings: Settings) -> FastPath:
    """The app of one server process of `nashra run --workers N`: its own connection,
    documents and partners, which a thread keeps up with what the main process stores.
    """
    storage = Storage(settings.storage_url)
    cache, partners = _followed(settings, storage)
    return create_app(cache, status=functools.partial(sources_status, storage), partners=partners,
                      host=settings.host, admin_token=settings.admin_token,
                      tags=functools.partial(build_tag, settings, storage))


def _followed(settings: Settings, storage: Storage) -> tuple[DocumentCache, PartnerDesk]:
    """The documents and partners of a process that publishes nothing itself, kept up with
    what other processes store by a thread of their own."""
    cache = DocumentCache(storage)
    partners = PartnerDesk(settings, storage, cache)
    threading.Thread(target=_follow, args=(cache, partners), daemon=True).start()
    return cache, partners


def _follow(cache: DocumentCache, partners: PartnerDesk) -> None:
    """Every few seconds: reload the documents when their fingerprints changed, and the
    partners (cheap reads: a server process of its own has no other news of a build)."""
    while True:
        time.sleep(FOLLOW_SECONDS)
        try:
            cache.refresh()
            partners.reload()
        except Exception:  # a locked or busy database: the next round tries again
            log.exception("worker: reloading documents and partners failed")


def run(settings: Settings, storage: Storage) -> None:
    """Ingest and publish once, then serve while the jobs keep everything fresh; Ctrl-C stops."""
    ingest_seeds(settings, storage, progress=sys.stderr.isatty())
    changed = build_documents(settings, storage)
    # Server processes of their own (`--workers N`) load and compress the documents each.
    cache = DocumentCache(storage) if settings.server_workers == 1 else None
    runtime = Runtime(settings, storage, cache)
    runtime.start()
    if runtime.hub:
        runtime.hub.publish(changed_feed_urls(settings.base_url, changed))
    try:
        serve(settings, storage, cache, runtime.partners, runtime.status)
    finally:
        runtime.stop()


def run_web(settings: Settings, storage: Storage) -> None:
    """The web role: serve what workers publish, reloading documents when they change."""
    cache, partners = _followed(settings, storage)
    serve(settings, storage, cache, partners, functools.partial(sources_status, storage))


def run_scheduler(settings: Settings, storage: Storage) -> None:
    """The scheduler role: the one holding the lock queues due sources for the workers; the
    others stand by and one takes over within seconds of its death. Ctrl-C stops."""
    from feeds.tasks import TaskQueue

    queue, standing_by = TaskQueue(settings, storage), False
    while True:
        try:
            with storage.advisory_lock(SCHEDULER_LOCK) as held:
                if held:
                    standing_by = False
                    _lead(settings, storage, queue, held)
                    log.warning("scheduler: lost the database connection that held the lock")
                elif not standing_by:
                    log.info("scheduler: standing by, another one is active")
                    standing_by = True
        except StorageError as exc:
            log.warning("scheduler: %s; trying again", exc)
        time.sleep(TAKEOVER_SECONDS)


def _lead(settings: Settings, storage: Storage, queue: TaskQueue,
          held: Callable[[], bool]) -> None:
    """Schedule, queuing polls, while this process still holds the scheduler lock."""
    log.info("scheduler: active, queuing due sources on %s", queue.broker)
    runtime = Runtime(settings, storage, None, queue)
    queue.rebuild()  # as `run` builds at start: the config's topics may have changed
    runtime.seeds_job()
    runtime.start()
    try:
        while held():
            time.sleep(TAKEOVER_SECONDS)
    finally:
        runtime.stop()


def serve(settings: Settings, storage: Storage, cache: DocumentCache | None,
          partners: PartnerDesk | None, status: Callable[[], dict]) -> None:
    """Serve over HTTP until Ctrl-C, with a live status line on a terminal: `cache` and
    `partners` in this process, or [server] workers processes of their own (which make
    theirs, so this process may pass None)."""
    if not is_loopback(settings.host) and not settings.admin_token:
        log.warning("/status is closed: the server is bound to %s, beyond loopback, and no "
                    "admin token is set ([server] admin_token or $NASHRA_ADMIN_TOKEN)",
                    settings.host)
    if settings.server_workers > 1:
        server = Workers(functools.partial(worker_app, settings), settings.server_workers,
                         settings.host, settings.port, settings.access_log)
    else:
        app = create_app(cache, status=status, partners=partners, host=settings.host,
                         admin_token=settings.admin_token,
                         tags=functools.partial(build_tag, settings, storage))
        server = make_server(app, settings.host, settings.port, settings.access_log)
    log.info("serving %d topics on http://%s:%d/ with %d process(es) (seeds every %ds; "
             "Ctrl-C to stop)", len(settings.topics), settings.host, settings.port,
             settings.server_workers, settings.scan_interval)
    stop = threading.Event()
    live = None
    if sys.stderr.isatty():
        live = threading.Thread(target=_live_status, args=(status, stop), daemon=True)
    try:
        with logging_redirect_tqdm():
            if live:
                live.start()
            server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is the expected outcome
    finally:
        stop.set()
        log.info("stopped")


if __name__ == "__main__":
    from feeds.cli import main

    main(["run", *sys.argv[1:]])
