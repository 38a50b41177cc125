"""Distributed ingest on Celery: the app, its two tasks, and what the scheduler role queues.

    nashra.poll(name)  fetch, parse, clean, dedupe, tag and store one source (`poll_source`),
                       under the source's advisory lock, and only while it is still due
    nashra.rebuild()   rebuild the feeds whose articles changed, one build at a time

Tasks are acknowledged after they ran (acks_late) and given back when their worker dies
(reject_on_worker_lost), so a killed worker loses nothing. Running one twice changes
nothing: inserts are idempotent in storage, a source polled since it was queued is no
longer due, and a rebuild of unchanged inputs builds nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from feeds.config import ConfigError, Settings
from feeds.fetch import Fetcher
from feeds.model import Source
from feeds.pipeline import IngestReport, Preparer, build_documents
from feeds.polling import make_fetcher, poll_source
from feeds.websub import HubPinger, changed_feed_urls
from storage import Storage

log = logging.getLogger("nashra.tasks")

REBUILD_LOCK = "nashra:rebuild"

app = Celery("nashra", set_as_current=False)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,  # a worker holds one task beyond those it runs, no more
    task_ignore_result=True,  # results live in storage; no result backend is needed
    worker_hijack_root_logger=False,  # keep `nashra -v`'s logging
    broker_connection_retry_on_startup=True,
)
_configured: list[Settings] = []  # the settings `configure` was given, for worker processes


def configure(settings: Settings) -> Celery:
    """Point the app at `[workers] broker_url`; the worker processes use `settings`."""
    workers = settings.workers
    if not workers.broker_url:
        raise ConfigError(f"{settings.source}: workers.broker_url is missing; the scheduler "
                          "and worker roles need a Celery broker: add [workers] broker_url = "
                          '"redis://127.0.0.1:6379/0" (or an amqp:// URL of RabbitMQ)')
    app.conf.broker_url = workers.broker_url
    app.conf.task_default_queue = workers.queue
    # Redis gives an unacknowledged task to another worker after this; RabbitMQ ignores it.
    app.conf.broker_transport_options = {"visibility_timeout": workers.visibility_timeout}
    _configured[:] = [settings]
    return app


@dataclass
class _Worker:
    settings: Settings
    storage: Storage
    fetcher: Fetcher
    prepare: Preparer
    rebuilds: Rebuilds
    hub: HubPinger | None


@functools.cache
def _worker() -> _Worker:
    """This worker process's storage, fetcher and tagger: made in the process that runs the
    tasks, after Celery forked it, since database connections do not survive a fork."""
    settings = _configured[0]
    return _Worker(settings, Storage(settings.storage_url), make_fetcher(settings),
                   Preparer(settings), Rebuilds(settings.workers.rebuild_delay),
                   HubPinger(settings.websub_hub) if settings.websub_hub else None)


@app.task(name="nashra.poll", bind=True)
def poll_task(self, name: str) -> str:
    """Poll source `name` unless another worker is polling it or it is no longer due.

    A task given again after its worker died may have stored articles whose rebuild was
    never queued, and the poll again finds nothing new: it queues a rebuild regardless."""
    here = _worker()
    if (self.request.delivery_info or {}).get("redelivered"):
        here.rebuilds.request()
    with here.storage.advisory_lock(f"nashra:source:{name}") as held:
        source = here.storage.source(name) if held else None
        if source is None or not source.enabled or not _due(source):
            return f"{name}: skipped (being polled elsewhere, or not due)"
        report = poll_source(here.settings, here.storage, here.fetcher, source,
                             prepare=here.prepare)
    if report.topics:
        here.rebuilds.request()
    return str(report)


@app.task(name="nashra.rebuild")
def rebuild_task() -> str:
    """Rebuild the feeds whose articles changed. One build at a time: a rebuild that waited
    for another finds built what that one built, and builds only what changed since."""
    here = _worker()
    with here.storage.advisory_lock(REBUILD_LOCK, wait=True):
        changed = build_documents(here.settings, here.storage)
    if changed and here.hub:
        here.hub.publish(changed_feed_urls(here.settings.base_url, changed))
    return f"{len(changed)} documents rebuilt"


def _due(source: Source) -> bool:
    return source.next_poll is None or source.next_poll <= datetime.now(UTC)


class Rebuilds:
    """Feed rebuilds requested by one process, debounced: the first change queues a rebuild
    `delay` seconds ahead, and the changes until then are built by it."""

    def __init__(self, delay: float):
        self.delay, self.queued_until = delay, 0.0

    def request(self) -> None:
        now = time.monotonic()
        if now >= self.queued_until:  # else the queued one runs after this change: it sees it
            rebuild_task.apply_async(countdown=self.delay)
            self.queued_until = now + self.delay


class TaskQueue:
    """What the active scheduler hands the workers: a poll of each due source, rebuilds."""

    def __init__(self, settings: Settings):
        self.recheck = settings.workers.visibility_timeout
        configure(settings)
        self.broker = maybe_sanitize_url(settings.workers.broker_url)  # for logs: no password
        self.rebuilds = Rebuilds(settings.workers.rebuild_delay)

    def poll(self, source: Source) -> IngestReport:
        """Queue a poll of `source` when due; either way, say when to look at it again.

        A queued source is looked at again after its shortest interval (or the visibility
        timeout, if shorter): by then a worker has polled it and set its next poll, or the
        task was lost and it is queued again (a copy still queued then finds it not due)."""
        now = datetime.now(UTC)
        if not _due(source):  # a worker polled it since it was queued
            return IngestReport(source.name, note="polled", next_poll=source.next_poll)
        poll_task.delay(source.name)
        recheck = min(self.recheck, source.min_interval)
        return IngestReport(source.name, note="queued", next_poll=now + timedelta(seconds=recheck))

    def rebuild(self) -> None:
        self.rebuilds.request()


def run_worker(settings: Settings, concurrency: int) -> None:
    """The worker role: a Celery worker of `concurrency` processes, until Ctrl-C."""
    configure(settings)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    app.worker_main(["worker", f"--concurrency={concurrency}", f"--loglevel={level}",
                     f"--hostname=nashra-{os.getpid()}@%h", "--without-gossip",
                     "--without-mingle"])
