"""Distributed ingest on Celery: the app, its two tasks, and what the scheduler role queues.

    nashra.poll(name)  fetch, parse, clean, dedupe, tag and store one source (`poll_source`),
                       under the source's advisory lock, and only while it is still due;
                       ask for a rebuild of the topics it changed (`Rebuilds`)
    nashra.rebuild()   rebuild the feeds of the topics whose rebuild is due, one build at a time

Tasks are acknowledged after they ran (acks_late) and given back when their worker dies
(reject_on_worker_lost), so a killed worker loses nothing. Running one twice changes
nothing: inserts are idempotent in storage, a source polled since it was queued is no
longer due, and a rebuild of unchanged inputs builds nothing.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from feeds.config import ConfigError, Settings
from feeds.fetch import Fetcher
from feeds.model import Source
from feeds.pipeline import IngestReport, build_documents
from feeds.polling import FeedReader, make_fetcher, poll_source
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
    # Workers look for such tasks every 10 s; kombu's default throttle (scan on every 10th
    # look) would leave a dead worker's tasks, a rebuild waiting for its time among them,
    # for up to 100 s more.
    app.conf.broker_transport_options = {"visibility_timeout": workers.visibility_timeout,
                                         "unacked_restore_throttle": 1}
    _configured[:] = [settings]
    return app


@dataclass
class _Worker:
    settings: Settings
    storage: Storage
    fetcher: Fetcher
    reader: FeedReader  # in this process: Celery's processes are the workers
    rebuilds: Rebuilds
    hub: HubPinger | None


@functools.cache
def _worker() -> _Worker:
    """This worker process's storage, fetcher and tagger: made in the process that runs the
    tasks, after Celery forked it, since database connections do not survive a fork."""
    settings = _configured[0]
    storage, fetcher = Storage(settings.storage_url), make_fetcher(settings)
    return _Worker(settings, storage, fetcher, FeedReader(settings, fetcher=fetcher),
                   Rebuilds(settings, storage),
                   HubPinger(settings.websub_hub) if settings.websub_hub else None)


@app.task(name="nashra.poll", bind=True)
def poll_task(self, name: str) -> str:
    """Poll source `name` unless another worker is polling it or it is no longer due.

    A task given again after its worker died may have stored articles whose rebuild was
    never asked for or queued, and the poll again finds nothing new: it asks for a rebuild
    of every topic and queues one regardless."""
    here = _worker()
    if _redelivered(self):
        here.rebuilds.request(None, always=True)
    with here.storage.advisory_lock(f"nashra:source:{name}") as held:
        source = here.storage.source(name) if held else None
        if source is None or not source.enabled or not _due(source):
            return f"{name}: skipped (being polled elsewhere, or not due)"
        report = poll_source(here.settings, here.storage, here.fetcher, source,
                             reader=here.reader)
    here.rebuilds.request(report.topics)
    return str(report)


@app.task(name="nashra.rebuild", bind=True)
def rebuild_task(self) -> str:
    """Rebuild the feeds of the topics whose rebuild is due, whoever asked for it, and the
    index and OPML list. One build at a time: a rebuild that waited for another finds the
    topics that one took gone, and builds only what is due since.

    The topics are taken before the build reads them, so a change stored meanwhile asks
    for a rebuild of its own; a build that fails gives them back. A task given again after
    its worker died builds every topic whose inputs changed: the topics it took died with
    that worker."""
    here, everything = _worker(), _redelivered(self)
    with here.storage.advisory_lock(REBUILD_LOCK, wait=True):
        topics = here.storage.take_due_rebuilds(datetime.now(UTC))
        if not (topics or everything):
            return "no rebuild due"
        try:
            changed = build_documents(here.settings, here.storage,
                                      topics=None if everything else topics)
        except BaseException:
            here.storage.request_rebuilds(topics, datetime.now(UTC))  # for the next rebuild
            raise
    if changed and here.hub:
        here.hub.publish(changed_feed_urls(here.settings.base_url, changed))
    built = "every topic" if everything else ", ".join(sorted(topics))
    return f"{built}: {len(changed)} documents rebuilt"


def _redelivered(task) -> bool:
    """Whether the broker gave this task again, its first worker having died with it."""
    return bool((task.request.delivery_info or {}).get("redelivered"))


def _due(source: Source) -> bool:
    return source.next_poll is None or source.next_poll <= datetime.now(UTC)


class Rebuilds:
    """Feed rebuilds asked for by every worker, debounced per topic through storage: the
    first change to a topic since its last build asks for a rebuild `rebuild_delay` seconds
    ahead and queues a task for then; the next changes find that request waiting and add
    nothing, however many workers stored them, and the task builds them all."""

    def __init__(self, settings: Settings, storage: Storage):
        self.storage, self.delay = storage, settings.workers.rebuild_delay
        self.topics = {t.slug for t in settings.topics}  # entity tags have no built feeds

    def request(self, topics: Collection[str] | None, always: bool = False) -> None:
        """Ask for a rebuild of `topics` (None: every topic); queue a task when one of them
        was not waiting yet, or `always` (its asker may have died before queuing one)."""
        wanted = self.topics if topics is None else self.topics & set(topics)
        due = datetime.now(UTC) + timedelta(seconds=self.delay)
        if self.storage.request_rebuilds(wanted, due) or always:
            rebuild_task.apply_async(countdown=self.delay)


class TaskQueue:
    """What the active scheduler hands the workers: a poll of each due source, rebuilds."""

    def __init__(self, settings: Settings, storage: Storage):
        self.recheck = settings.workers.visibility_timeout
        configure(settings)
        self.broker = maybe_sanitize_url(settings.workers.broker_url)  # for logs: no password
        self.rebuilds = Rebuilds(settings, storage)

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

    def rebuild(self, topics: Collection[str] | None = None) -> None:
        """Ask for a rebuild of `topics` (None: of every topic, queued whatever waits)."""
        self.rebuilds.request(topics, always=topics is None)


def run_worker(settings: Settings, concurrency: int) -> None:
    """The worker role: a Celery worker of `concurrency` processes, until Ctrl-C."""
    configure(settings)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    app.worker_main(["worker", f"--concurrency={concurrency}", f"--loglevel={level}",
                     f"--hostname=nashra-{os.getpid()}@%h", "--without-gossip",
                     "--without-mingle"])
