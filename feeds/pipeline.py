"""The pipeline: read -> clean -> tag -> dedupe -> store, then publish what changed.

These functions only call the stages in order; the scheduler and the CLI call these.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from feeds import batched
from feeds.archives import update_archives
from feeds.clean import clean_article
from feeds.clusters import dedupe_keys, deduper_for, forget_deduper
from feeds.config import Settings
from feeds.model import Article, Document, Topic
from feeds.publish import (
    FEED_KINDS,
    Entries,
    build_index,
    build_opml,
    build_stylesheet,
    build_topic,
    feed_path,
    topic_fingerprint,
)
from feeds.seedfiles import (
    SEED_SOURCE,
    SeedError,
    SeedProblem,
    read_seed,
    scan_folder,
    seed_article,
)
from feeds.tagging import Tagger, gazetteer
from storage import Storage

log = logging.getLogger("nashra.pipeline")


@dataclass
class IngestReport:
    """What one pass over a source did, for logs and the CLI."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    duplicates: int = 0  # of the new: copies of a story already kept (or taking it over)
    topics: set[str] = field(default_factory=set)
    note: str = ""  # e.g. "not modified", "failed: ..."
    next_poll: datetime | None = None  # feed sources: when to poll again (None: disabled)

    def __str__(self) -> str:
        if self.note:
            return f"{self.source}: {self.note}"
        return (f"{self.source}: {self.new} new ({self.duplicates} duplicates), "
                f"{self.updated} updated, {self.unchanged} unchanged, {self.skipped} skipped")


PREPARED_TOGETHER = 50  # articles a trained model reads at once (ingest, retag)


def make_tagger(settings: Settings) -> Tagger:
    """The topic rules, and the trained model when a topic is decided by it (scikit-learn is
    loaded only then)."""
    if not settings.decisions:
        return Tagger(settings.topics)
    from feeds.learn import load_for

    return Tagger(settings.topics, model=load_for(settings))


class Preparer:
    """clean -> tag -> dedupe keys for one source's articles: the stages every source shares
    before storing, none of which needs storage (so a parsing process can run them)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.tagger = make_tagger(settings)
        self.known_topics = {t.slug for t in settings.topics}

    def all(self, articles: Sequence[Article]) -> list[Article]:
        """Each article prepared, tagged together for a model deciding topics (see tags_of)."""
        for article in articles:
            for unknown in set(article.topics) - self.known_topics:
                log.warning("%s %s: topic %r is not in the config; add it under [[topics]]",
                            article.source, article.key, unknown)
        cleaned = [clean_article(article, self.settings.language) for article in articles]
        return [replace(a, dedupe=dedupe_keys(a.url, a.title, a.content_html, a.summary))
                for a in self.tagger.tag_all(cleaned)]


def store(settings: Settings, storage: Storage, articles: Iterable[Article],
          report: IngestReport, kind: str) -> None:
    """Dedupe and save prepared articles in batches; each batch is one transaction.

    Dedupe runs on the whole batch just before it is stored, under the window's lock, so
    copies arriving at once from two sources still form one cluster. Tagging came first:
    a duplicate's topics are its cluster's too.
    """
    deduper = deduper_for(storage, settings.dedupe)
    for batch in batched(articles, settings.batch_size):
        with deduper.lock:
            try:
                stored = storage.dedupe_keys(a.id for a in batch)
                batch = deduper.assign(batch, stored)
                result = storage.save_articles(batch, kind=kind, near=deduper.recheck)
            except BaseException:
                forget_deduper(storage)  # the window may hold what was not stored
                raise
        report.duplicates += sum(1 for a in batch if a.id not in stored
                                 and (a.dedupe.duplicate_of or a.dedupe.replaces))
        report.new += result.new
        report.updated += result.updated
        report.unchanged += result.unchanged
        report.topics |= result.topics


def ingest_seeds(settings: Settings, storage: Storage, progress: bool = False) -> IngestReport:
    """One pass over the seeds folder; each batch of articles is committed atomically."""
    report = IngestReport(SEED_SOURCE)
    scan = scan_folder(settings.seeds_dir, storage.content_hashes(SEED_SOURCE),
                       settings.max_seed_bytes)
    for problem in scan.problems:
        log.warning("%s (skipped)", problem)
    report.skipped, report.unchanged = len(scan.problems), scan.unchanged
    prepare = Preparer(settings)

    def prepared() -> Iterator[Article]:
        bar = tqdm(scan.articles(), total=len(scan.changed), desc="seeds", unit="seed",
                   disable=not progress or not scan.changed, leave=False)
        for batch in batched(bar, PREPARED_TOGETHER):
            for problem in [item for item in batch if isinstance(item, SeedProblem)]:
                log.warning("%s (skipped)", problem)
                report.skipped += 1
            yield from prepare.all([item for item in batch if not isinstance(item, SeedProblem)])

    store(settings, storage, prepared(), report, kind="seeds")
    log.info("%s", report)
    return report


@dataclass
class RetagReport:
    """What `retag` did."""

    checked: int = 0
    changed: int = 0  # articles whose own tags changed
    tags: set[str] = field(default_factory=set)  # topics and entities whose articles changed
    documents: int = 0  # documents rebuilt
    adapted: str = ""  # which sources the model adapted to, when topics are decided by one

    def __str__(self) -> str:
        topics = sorted(t for t in self.tags if ":" not in t)
        return "\n".join(filter(None, [self.adapted, (
            f"{self.checked} checked, {self.changed} retagged; topics changed: "
            f"{', '.join(topics) or 'none'}; {self.documents} documents rebuilt")]))


def every_stored(storage: Storage, doing: str, progress: bool = False) -> Iterator[Article]:
    """Every stored article with its own tags, with a progress bar saying what is `doing`."""
    yield from tqdm(storage.articles_with_own_tags(), total=storage.article_count(), desc=doing,
                    unit=" articles", disable=not progress, leave=False)


def retag_stored(settings: Settings, storage: Storage, batch_size: int = 500,
                 progress: bool = False) -> RetagReport:
    """Re-apply the current rules and gazetteer to every stored article, store the tags that
    changed, and rebuild the feeds they touch.

    Topics an article was given by its source ([[sources]] topics, a seed's front matter)
    are kept, as at ingest. A trained model first adapts to each source's stored articles
    and is saved so, for ingest to use.
    """
    tagger = make_tagger(settings)
    source_topics = {s.name: s.topics for s in storage.sources()}
    report, changes = RetagReport(), {}
    if tagger.model is not None:
        from feeds.learn import adapt_to_stored, save

        report.adapted = adapt_to_stored(tagger.model,
                                         every_stored(storage, "adapting the model", progress))
        save(tagger.model, settings.model_path)
    for batch in batched(every_stored(storage, "retagging", progress), PREPARED_TOGETHER):
        report.checked += len(batch)
        named = [a.with_topics(named_topics(settings, source_topics, a)) for a in batch]
        for article, tags in zip(batch, tagger.tags_of(named), strict=True):
            if set(tags) != set(article.topics):
                changes[article.id] = tags
    for ids in batched(changes, batch_size):
        report.tags |= storage.replace_tags({i: changes[i] for i in ids})
    report.changed = len(changes)
    report.documents = len(build_documents(settings, storage))
    return report


def named_topics(settings: Settings, source_topics: Mapping[str, tuple[str, ...]],
                 article: Article) -> tuple[str, ...]:
    """The topics a stored article was given by its source: the [[sources]] topics of its
    feed, or its seed's front matter (read again, while the file is there)."""
    if article.source != SEED_SOURCE:
        return source_topics.get(article.source, ())
    try:
        seed = read_seed(settings.seeds_dir / article.key, article.key, settings.max_seed_bytes)
        return () if seed.page is not None else seed_article(seed).topics
    except (OSError, SeedError):
        return ()


def build_documents(settings: Settings, storage: Storage, force: bool = False,
                    topics: Collection[str] | None = None) -> list[Document]:
    """Rebuild the documents whose inputs changed (all of them with `force`) and store them.

    `topics` limits the topic feeds looked at to those (the topics a rebuild task took,
    feeds/tasks.py); the index and OPML list, which show every topic's count and date, are
    looked at each time. Publishing reads only from storage, so a restart rebuilds the same
    bytes.
    """
    previous = {} if force else storage.built_from()
    empty_updated = storage.created
    changed: list[Document] = []
    read: dict[str, Article] = {}  # an article in several topics is read once
    entries = Entries()  # and written once
    unread, newest = [], empty_updated  # the topics not looked at; the latest shown entry
    for topic in settings.topics:
        if topics is not None and topic.slug not in topics:
            unread.append(topic.slug)
            continue
        articles = storage.articles(topic.slug, settings.items_per_feed, read)
        newest = max([newest, *(a.updated for a in articles)])
        inputs = topic_fingerprint(settings, topic, articles)
        if any(previous.get(feed_path(topic.slug, kind)) != inputs for kind in FEED_KINDS):
            open_page, newest_archive = update_archives(settings, storage, topic, articles,
                                                         read, entries)
            changed += open_page
            changed += build_topic(settings, topic, articles, empty_updated, inputs,
                                   archive=newest_archive, entries=entries)
    newest = max(newest, storage.newest_shown(unread, settings.items_per_feed) or newest)
    stylesheets = [build_stylesheet(settings, language, empty_updated)
                   for language in dict.fromkeys(t.language for t in settings.topics)]
    for document in (build_opml(settings, newest),
                     build_index(settings, storage.topic_counts(), newest), *stylesheets):
        if previous.get(document.path) != document.built_from:
            changed.append(document)
    storage.save_documents(changed)
    for document in changed:
        log.debug("published %s (%d bytes)", document.path, len(document.body))
    if changed:
        log.info("published %d documents: %s", len(changed), " ".join(d.path for d in changed))
    return changed


def build_tag(settings: Settings, storage: Storage, tag: str) -> list[Document] | None:
    """The RSS, Atom and JSON feeds of entity `tag` ("org:isis"), or None if the gazetteer
    has no such entity.

    Built when a reader first asks (the server keeps them until the next change), not
    with every build: of a thousand entities, a few are ever followed.
    """
    entity = gazetteer().get(tag)
    if entity is None:
        return None
    names = {language: entity.label(language) for language in settings.site_titles}
    topic = Topic(slug=tag, language=settings.language, titles=names,
                  descriptions={language: f"{name} - {settings.site_titles[language]}"
                                for language, name in names.items()})
    return build_topic(settings, topic, storage.articles(tag, settings.items_per_feed),
                       storage.created)


def write_documents(documents: Iterable[Document], out: Path) -> list[Path]:
    """Write documents as static files under `out`, for any static host or CDN.

    Each gets a gzipped copy beside it (`.gz`), for nginx's gzip_static.
    """
    written = []
    for document in documents:
        target = out / document.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(document.body)
        zipped = target.with_name(target.name + ".gz")
        zipped.write_bytes(gzip.compress(document.body, mtime=0))
        written += [target, zipped]
    return written
