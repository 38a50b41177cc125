"""Feed sources through the pipeline: fetch -> parse -> clean -> tag -> store, state recorded.

One poll of one source is `poll_source`; the scheduler runs it per source on a timetable
and `nashra ingest` runs it once for every enabled source. Every outcome, good or bad, ends
in the source's stored state (validators, errors, next poll), so a restart carries on.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import random
import signal
import threading
from collections.abc import Mapping
from concurrent.futures import CancelledError, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from feeds import LOG_FORMAT, __version__
from feeds.clean import extract_article
from feeds.config import Settings
from feeds.fetch import Fetcher, FetchResult, adaptive_interval, next_poll_delay, user_agent
from feeds.model import Article, Source
from feeds.parse import ParsedFeed, parse_feed
from feeds.pipeline import IngestReport, Preparer, store
from storage import Storage

log = logging.getLogger("nashra.sources")

FULL_TEXT_MIN_CHARS = 600  # an entry with less text than this is a summary worth completing
MAX_AUTO_PROCESSES = 4  # each holds a tagger and the language model: ~110 MB
# One pass over fewer sources (nashra ingest) is quicker in the polling threads than with
# processes to start: 60 feeds of ~40 KB took 2.7 s in threads, 1.8 s in two processes
# plus 1.1 s to start their forkserver; 200 took 8.1 s against 4.4 + 1.1 (bench_sources).
MIN_AUTO_POLLS = 64


def make_fetcher(settings: Settings) -> Fetcher:
    fetch = settings.fetch
    return Fetcher(user_agent(__version__, settings.base_url),
                   timeout=(fetch.connect_timeout, fetch.read_timeout), max_bytes=fetch.max_bytes)


def sync_config_sources(settings: Settings, storage: Storage) -> None:
    """Make stored sources follow the config: add or update its [[sources]], and remove
    config sources it no longer lists. Sources added with `nashra sources add` stay."""
    listed = {s.name for s in settings.sources}
    for source in settings.sources:
        storage.add_source(source)
    for stored in storage.sources():
        if stored.origin == "config" and stored.name not in listed:
            storage.remove_source(stored.name)
            log.info("source %s: removed from the config; its articles stay stored", stored.name)


@dataclass
class SourceCheck:
    """What one fetch and parse of a URL would ingest, without storing anything."""

    fetch: FetchResult
    feed: ParsedFeed | None  # without its articles: `articles`, prepared, are those
    articles: list[Article]


def check_source(settings: Settings, fetcher: Fetcher, url: str) -> SourceCheck:
    result = fetcher.fetch(url)
    if not result.ok:
        return SourceCheck(result, None, [])
    read = read_feed(Preparer(settings), fetcher, Source(name=url, url=url), result, {}, _now())
    return SourceCheck(result, read.feed, list(read.fresh))


@dataclass(frozen=True)
class ReadFeed:
    """A fetched feed parsed, and its new and changed articles prepared: a poll's CPU work.

    `feed` comes without its articles; those to store are `fresh`, the others `unchanged`.
    """

    feed: ParsedFeed
    fresh: tuple[Article, ...]
    unchanged: int
    item_count: int
    dates: tuple[datetime, ...]  # of the entries that carry a date


def read_feed(prepare: Preparer, fetcher: Fetcher, source: Source, fetched: FetchResult,
              known: Mapping[str, str], now: datetime) -> ReadFeed:
    """Parse what a poll of `source` fetched and prepare what `known` (key -> content hash
    stored) does not hold yet, with the source's language and topics; pages of full-text
    sources are fetched here."""
    feed = parse_feed(fetched.body, fetched.final_url, source.name,
                      content_type=fetched.content_type, now=now)
    changed = []
    for article in feed.articles:
        if known.get(article.key) == article.content_hash:
            continue
        if source.language:
            article = replace(article, language=source.language)
        if source.topics:
            article = article.with_topics(tuple(dict.fromkeys(article.topics + source.topics)))
        if source.full_text and article.key not in known:
            article = with_full_text(fetcher, article)
        changed.append(article)
    fresh = prepare.all(changed)
    dates = tuple(a.published for a in feed.articles if not a.date_estimated)
    return ReadFeed(replace(feed, articles=[]), tuple(fresh), len(feed.articles) - len(fresh),
                    len(feed.articles), dates)


class ReaderDied(RuntimeError):
    """A FeedReader worker process ended abruptly (killed, or out of memory)."""


class ReaderClosed(RuntimeError):
    """The FeedReader was closed (the process is stopping) before it read the feed."""


class FeedReader:
    """Runs read_feed in `processes` worker processes, or in the calling thread when 0.

    Parsing and preparing are most of a poll's CPU, and the poll threads share one core
    under the GIL: worker processes let ingest use every core. Each worker builds its own
    Preparer and fetcher once. Workers are forked from a forkserver that imported this
    module and built the tables every worker reads (feeds.reader_preload), so none spends
    the ~1 s of CPU a fresh interpreter takes to import it, nor ~0.13 s to build those, and
    they share those pages (where there is no forkserver, as on Windows, they are spawned).
    """

    def __init__(self, settings: Settings, processes: int = 0, fetcher: Fetcher | None = None):
        """`fetcher` fetches full-text pages in this process (a worker makes its own)."""
        self._settings, self._processes, self._pool = settings, processes, None
        self._lock, self._closed = threading.Lock(), False
        if processes:
            self._pool = self._new_pool()
        else:
            self._here = (Preparer(settings), fetcher or make_fetcher(settings))

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._processes, mp_context=_reader_context(),
            initializer=_start_reader, initargs=(self._settings, logging.getLogger().level))

    def read(self, source: Source, fetched: FetchResult, known: Mapping[str, str],
             now: datetime) -> ReadFeed:
        """Raises ReaderDied if a worker died meanwhile (a new pool then takes over), and
        ReaderClosed once closed."""
        if self._pool is None:
            return read_feed(*self._here, source, fetched, known, now)
        pool = self._pool
        try:
            return pool.submit(_read_in_worker, source, fetched, known, now).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            raise ReaderDied(f"a parsing process died while this feed was read ({exc}); "
                             "new ones were started, and the next poll reads it again") from None
        except (CancelledError, RuntimeError):  # submitted after close, or cancelled by it
            if not self._closed:
                raise
            raise ReaderClosed("the reader was closed before it read the feed") from None

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


_worker: tuple[Preparer, Fetcher] | None = None  # a reader process's own


def _reader_context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["feeds.reader_preload"])  # when the server first starts
    return context


def _start_reader(settings: Settings, log_level: int) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    gc.freeze()  # what the forkserver imported: the collector need not walk it in each worker
    _worker = (Preparer(settings), make_fetcher(settings))
    gc.freeze()  # nor the Preparer, which lasts as long as the worker


def _read_in_worker(source: Source, fetched: FetchResult, known: Mapping[str, str],
                    now: datetime) -> ReadFeed:
    return read_feed(*_worker, source, fetched, known, now)


def reader_processes(settings: Settings, polls: int | None = None) -> int:
    """Worker processes for `polls` polls (None: many, over time): [fetch] processes, or
    when it says "auto", one per core (up to 4) for MIN_AUTO_POLLS polls or more; none for
    a single poll, which would wait for a worker to start."""
    wanted = settings.fetch.processes
    if wanted is None:
        cores = os.cpu_count() or 1
        few = polls is not None and polls < MIN_AUTO_POLLS
        wanted = 0 if cores == 1 or few else min(cores, MAX_AUTO_PROCESSES)
    return wanted if polls is None or polls > 1 else 0


def poll_source(settings: Settings, storage: Storage, fetcher: Fetcher, source: Source,
                rng: random.Random | None = None, reader: FeedReader | None = None
                ) -> IngestReport:
    """Poll `source` once and store what is new; never raises for the source's own faults.

    Pass one `reader` to every poll: its Preparer (a tagger) takes longer to build than a
    poll takes.
    """
    now, rng = _now(), rng or random.Random()
    report = IngestReport(source.name)
    result = fetcher.fetch(source.url, source.etag, source.last_modified)
    state = {"last_fetch": now, "last_status": result.status, "etag": result.etag,
             "last_modified": result.last_modified}
    interval = source.interval or source.max_interval
    if result.moved_to and result.moved_to != source.url:
        log.info("source %s: moved permanently to %s; URL updated", source.name, result.moved_to)
        state["url"] = result.moved_to
    error = result.error
    read = None
    if result.ok:
        reader = reader or FeedReader(settings, fetcher=fetcher)
        try:
            read = reader.read(source, result, storage.content_hashes(source.name), now)
        except ReaderDied as exc:
            error = str(exc)
            state.update(etag=source.etag, last_modified=source.last_modified)  # read it again
        except ReaderClosed:  # stopping: keep the stored state, so the next run polls again
            report.note = "not read: stopping"
            log.info("%s", report)
            return report
    if read is not None:
        feed = read.feed
        if feed.bozo and feed.bozo != source.bozo:
            log.warning("source %s: %s", source.name, feed.bozo)
        if not read.item_count and not feed.version:
            error = feed.bozo or "the response is not an RSS or Atom feed; check the URL"
        else:
            _store_feed(settings, storage, read, report)
            interval = adaptive_interval(list(read.dates), source.min_interval,
                                         source.max_interval, feed.update_hint, result.max_age)
            state.update(item_count=read.item_count, bozo=feed.bozo, interval=interval,
                         title=source.title or feed.title)
    errors = source.error_count + 1 if error else 0
    state.update(error_count=errors, last_error=error)
    if result.not_modified:
        report.note = "not modified (304)"
    elif error:
        report.note = f"failed: {error}"
    if result.gone:
        state["enabled"] = False
        log.warning("source %s: 410 Gone, the feed was removed; polling disabled "
                    "(`nashra sources add %s` enables it again)", source.name, source.url)
    elif error:
        log.warning("source %s: %s (failure %d in a row)", source.name, error, errors)
    delay = next_poll_delay(result, errors, interval, source.min_interval, source.max_interval,
                            rng, max_backoff=settings.fetch.max_backoff)
    next_poll = now + timedelta(seconds=delay)
    storage.save_source_state(replace(source, **state, next_poll=next_poll))
    report.next_poll = None if result.gone else next_poll
    log.info("%s (next poll in %s)", report, _duration(delay))
    return report


def _store_feed(settings: Settings, storage: Storage, read: ReadFeed,
                report: IngestReport) -> None:
    report.unchanged += read.unchanged
    store(settings, storage, read.fresh, report, kind="feed")
    report.skipped += len(read.feed.problems)
    for problem in read.feed.problems:
        log.debug("source %s: %s", report.source, problem)


def with_full_text(fetcher: Fetcher, article: Article) -> Article:
    """`article` with the main text of its page when the feed gave only a summary.

    On any failure the feed's own text is kept: a summary beats nothing.
    """
    if not article.url or len(article.content_html) >= FULL_TEXT_MIN_CHARS:
        return article
    page = fetcher.fetch(article.url)
    extracted = extract_article(page.body, article.url) if page.ok else None
    if extracted is None or len(extracted.content_html) <= len(article.content_html):
        log.debug("full text of %s: not found (%s); keeping the summary", article.url,
                  page.error or "no article text in the page")
        return article
    summary = article.summary or article.content_html
    return replace(article, content_html=extracted.content_html, summary=summary)


def poll_all(settings: Settings, storage: Storage, fetcher: Fetcher) -> list[IngestReport]:
    """Poll every enabled source once, `concurrency` at a time (for `nashra ingest`)."""
    gc.freeze()  # what the pass starts with (modules, config) outlives it: spare the collector
    sources = storage.sources(include_disabled=False)
    processes = reader_processes(settings, len(sources))
    with (FeedReader(settings, processes, fetcher) as reader,
          ThreadPoolExecutor(max_workers=settings.fetch.concurrency) as pool):
        return list(pool.map(
            lambda s: poll_source(settings, storage, fetcher, s, reader=reader), sources))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
