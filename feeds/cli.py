"""The `nashra` command."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import click
import listparser

from feeds import LOG_FORMAT, __version__
from feeds.clusters import explain_pair
from feeds.config import ConfigError, Settings, load_settings, source_name
from feeds.model import Article, Partner, Source
from feeds.partners import hash_token, new_token
from feeds.pipeline import (
    build_documents,
    every_stored,
    ingest_seeds,
    make_tagger,
    named_topics,
    retag_stored,
    write_documents,
)
from feeds.polling import check_source, make_fetcher, poll_all, sync_config_sources
from feeds.publish import FEED_KINDS, feed_path, sources_opml
from feeds.tagging import Tagger
from feeds.websub import HubPinger, changed_feed_urls
from storage import Storage, StorageError

LOCAL_CONFIG = Path("nashra.toml")


def resolve_config(path: str | None) -> Settings:
    """--config (or $NASHRA_CONFIG), else ./nashra.toml, else the shipped default."""
    if path is None and LOCAL_CONFIG.is_file():
        path = str(LOCAL_CONFIG)
    return load_settings(path)


def with_settings(command):
    """Adds --config to a command and hands it validated Settings and an open Storage.

    User-fixable errors end in one line naming the thing and the fix, not a traceback.
    """

    @click.option("--config", "config_path", metavar="FILE",
                  type=click.Path(dir_okay=False),
                  help="Config file (TOML). Default: ./nashra.toml if present, else the "
                       "shipped one. Also $NASHRA_CONFIG.")
    @functools.wraps(command)
    def wrapper(config_path: str | None, **kwargs):
        config_path = config_path or click.get_current_context().find_root().params["config_path"]
        try:
            settings = resolve_config(config_path)
            storage = Storage(settings.storage_url)
        except (ConfigError, StorageError) as exc:
            raise click.ClickException(str(exc)) from None
        try:
            return command(settings, storage, **kwargs)
        except (ConfigError, StorageError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            storage.close()

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nashra")
@click.option("--config", "config_path", envvar="NASHRA_CONFIG", metavar="FILE",
              type=click.Path(dir_okay=False), help="Config file (TOML), for every command.")
@click.option("-v", "--verbose", count=True, help="More log detail (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(config_path: str | None, verbose: int, quiet: bool) -> None:
    """Nashra (نشرة): right-to-left aware topic feeds from news seeds.

    \b
    Start here:
      nashra run            ingest seeds/, publish, serve on http://127.0.0.1:8080
      nashra ingest         one pass over seeds/, then exit
      nashra build --out D  write every feed as static files into D
      nashra topics         topics with article counts and feed URLs
      nashra articles       the newest articles, one line each
      nashra sources ...    feed sources: add, list, check, remove, import, export
      nashra dedupe ...     duplicates: explain A B, split ARTICLE
      nashra tag explain A  why an article has its topics and entities
      nashra retag          apply changed topic rules to stored articles
      nashra train --from F fit the topic classifier on labelled articles
      nashra partners ...   partner sites: add, list, rotate, remove
      nashra db migrate     copy an installation to PostgreSQL
    """
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format=LOG_FORMAT)
    if verbose < 2:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


ROLES = ("all", "scheduler", "worker", "web")


@cli.command()
@click.option("--role", type=click.Choice(ROLES), default="all", show_default=True,
              help="all: everything in this process. On several machines (PostgreSQL "
                   "storage, a [workers] broker_url): scheduler queues due sources, worker "
                   "polls them and rebuilds feeds, web serves them.")
@click.option("--host", help="Address to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default from config: 8080).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Server processes (default from config: 1).")
@click.option("--concurrency", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              show_default="the CPU count", help="Worker role: tasks run at once, each in "
                                                  "a process of its own.")
@with_settings
def run(settings: Settings, storage: Storage, role: str, host: str | None, port: int | None,
        workers: int | None, concurrency: int) -> None:
    """Ingest seeds and feed sources, publish the topic feeds and serve them until Ctrl-C.

    Seeds are scanned again every [seeds] scan_interval seconds; only topics whose
    articles changed are rebuilt. `--role` splits this over processes and machines.
    """
    import scheduler

    settings = settings.with_server(host, port, workers)
    if role != "all" and not storage.shared:
        raise click.ClickException(
            f"--role {role} needs PostgreSQL storage shared by every process: set [storage] "
            "url = \"postgresql://...\" (see `nashra db migrate`), or run --role all")
    if role == "all":
        scheduler.run(settings, storage)
    elif role == "web":
        scheduler.run_web(settings, storage)
    elif role == "scheduler":
        with contextlib.suppress(KeyboardInterrupt):
            scheduler.run_scheduler(settings, storage)
    else:
        from feeds.tasks import run_worker

        storage.close()  # the worker's processes open their own after the fork
        run_worker(settings, concurrency)


@cli.command()
@with_settings
def ingest(settings: Settings, storage: Storage) -> None:
    """One pass over the seeds and every enabled feed source, then publish and exit."""
    reports = [ingest_seeds(settings, storage, progress=sys.stderr.isatty())]
    sync_config_sources(settings, storage)
    with make_fetcher(settings) as fetcher:
        reports += poll_all(settings, storage, fetcher)
    changed = build_documents(settings, storage)
    if settings.websub_hub:  # one attempt: this command does not linger for retries
        hub = HubPinger(settings.websub_hub)
        hub.publish(changed_feed_urls(settings.base_url, changed))
        hub.close()
    for report in reports:
        click.echo(str(report))


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write index.html, topics.opml and topics/*.rss|atom into.")
@click.option("--base-url", help="Public URL the files will be served from "
                                 "(default: [site] base_url).")
@with_settings
def build(settings: Settings, storage: Storage, out: Path, base_url: str | None) -> None:
    """Write every topic's feeds, the OPML list and the index page as static files."""
    if base_url:
        settings = replace(settings, base_url=base_url.rstrip("/"))
    if storage.article_count() == 0:
        click.echo("note: storage holds no articles yet; run `nashra ingest` first", err=True)
    build_documents(settings, storage)
    written = write_documents(storage.documents(), out)
    click.echo(f"wrote {len(written)} files to {out}")


@cli.command()
@with_settings
def topics(settings: Settings, storage: Storage) -> None:
    """Each topic with its article count and feed URLs."""
    counts = storage.topic_counts()
    for topic in settings.topics:
        click.echo(f"{topic.slug:<16} {counts.get(topic.slug, 0):>6}  {topic.title}")
        for kind in FEED_KINDS:
            click.echo(f"{'':<24}{settings.base_url}/{feed_path(topic.slug, kind)}")


@cli.command()
@click.option("--topic", help="Only articles of this topic (a slug from `nashra topics`).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@with_settings
def articles(settings: Settings, storage: Storage, topic: str | None, limit: int) -> None:
    """The newest articles, one line each: date, id, topics, title."""
    if topic is not None and settings.topic(topic) is None:
        known = ", ".join(t.slug for t in settings.topics)
        raise click.ClickException(f"no topic {topic!r}; choose one of: {known}")
    for article in storage.articles(topic, limit):
        copies = len(article.reported_by)
        also = f"  (+{copies} {'copy' if copies == 1 else 'copies'})" if copies else ""
        topics = [t for t in article.topics if settings.topic(t)]
        entities = len(article.topics) - len(topics)  # see them with `nashra tag explain`
        more = f" +{entities} entities" if entities else ""
        click.echo(f"{article.published:%Y-%m-%d %H:%M}  {article.id[:8]}  "
                   f"[{','.join(topics)}{more}]  {article.title}{also}")


@cli.group()
def dedupe() -> None:
    """Clusters of duplicates: why two articles are (not) one story, and undoing a merge.

    ARTICLE is an id, or its first 8 characters as `nashra articles` prints them.
    """


def _stored(storage: Storage, reference: str) -> Article:
    article = storage.article(reference)
    if article is None:
        raise click.ClickException(f"no stored article {reference!r}; "
                                   "`nashra articles` lists ids")
    return article


@dedupe.command("explain")
@click.argument("first")
@click.argument("second")
@with_settings
def dedupe_explain(settings: Settings, storage: Storage, first: str, second: str) -> None:
    """Whether two stored articles are duplicates, by which layer, how similar."""
    a, b = _stored(storage, first), _stored(storage, second)
    for label, article in (("A", a), ("B", b)):
        click.echo(f"{label}  {article.id}  {article.source}  {article.published:%Y-%m-%d %H:%M}"
                   f"  {article.title}")
    click.echo("")
    for line in explain_pair(a, b, settings.dedupe):
        click.echo(line)


@dedupe.command("split")
@click.argument("article")
@with_settings
def dedupe_split(settings: Settings, storage: Storage, article: str) -> None:
    """Take ARTICLE out of its cluster (a wrong merge); the feeds are rebuilt."""
    found = _stored(storage, article)
    topics = storage.split(found.id)
    if not topics and found.dedupe.duplicate_of is None:
        click.echo(f"{found.id} is not in a cluster: nothing to split")
        return
    documents = build_documents(settings, storage)
    click.echo(f"{found.id} now stands alone; {len(documents)} documents rebuilt "
               f"(topics: {', '.join(sorted(topics)) or 'none'})")


@cli.group()
def tag() -> None:
    """Topic rules and entities: why an article has its tags.

    ARTICLE is an id, or its first 8 characters as `nashra articles` prints them.
    """


@tag.command("explain")
@click.argument("article")
@with_settings
def tag_explain(settings: Settings, storage: Storage, article: str) -> None:
    """Which rule parts and entities matched ARTICLE (title or body, which words), the scores,
    and for topics the trained model decides, its probability and what tagged them."""
    found = _stored(storage, article)
    sources = {s.name: s.topics for s in storage.sources()}
    click.echo(f"{found.id}  {found.source}  {found.title}")
    click.echo(f"stored tags: {' '.join(found.topics) or '-'}")
    click.echo("")
    named = found.with_topics(named_topics(settings, sources, found))
    try:
        tagger = make_tagger(settings)
    except ConfigError as exc:  # the model's: the rules can be explained all the same
        tagger = Tagger(settings.topics)
        click.echo(f"model: {exc} (below: the rules alone, for "
                   f"{', '.join(settings.decisions)})")
    for line in tagger.explain(named):
        click.echo(line)


@cli.command()
@with_settings
def retag(settings: Settings, storage: Storage) -> None:
    """Apply the current topic rules and gazetteer to every stored article; rebuild the feeds.

    A trained model that topics are decided by is first adapted to each source's stored
    articles, and saved.
    """
    click.echo(str(retag_stored(settings, storage, progress=sys.stderr.isatty())))


@cli.command()
@click.option("--from", "from_file", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.jsonl", help='Labelled articles, one {"title", "text", "label"} '
                                         "object a line (label: a string or a list).")
@click.option("--from-storage", is_flag=True, help="Stored articles whose feed source or "
                                                   "seed front matter named their topics.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds for the report.")
@with_settings
def train(settings: Settings, storage: Storage, from_file: Path | None, from_storage: bool,
          folds: int) -> None:
    """Fit the topic classifier on labelled articles, report its cross-validated precision,
    recall and F1 per label, adapt it to each stored source's mix of labels, and save it
    ([model] path, beside the config). Sources that never use a label the others use are
    noted: their articles of that kind teach the model another line between labels.

    Topics with decide = "model" or "both" are then decided by it.
    """
    from feeds import learn  # scikit-learn: loaded only by the commands that need it

    if (from_file is None) == (not from_storage):
        raise click.ClickException("give --from FILE.jsonl or --from-storage (one of them)")
    if from_file is not None:
        examples = learn.read_jsonl(from_file)
    else:
        source_topics = {s.name: s.topics for s in storage.sources()}
        examples = learn.stored_examples(storage.articles_with_own_tags(),
                                         lambda a: named_topics(settings, source_topics, a))
    learn.check_examples(examples, folds)
    for gap in learn.label_gaps(examples):
        click.echo(f"note: {gap}", err=True)
    click.echo(f"{len(examples)} examples; cross-validating in {folds} folds", err=True)
    scores = learn.cross_validate(examples, folds, progress=lambda fold: click.echo(
        f"  fold {fold}/{folds}: fitting", err=True))
    click.echo(f"{'label':<20} {'examples':>8} {'precision':>9} {'recall':>7} {'F1':>6}")
    for score in scores:
        click.echo(f"{score.label:<20} {score.examples:>8} {score.precision:>9.3f} "
                   f"{score.recall:>7.3f} {score.f1:>6.3f}")
    click.echo(f"macro-F1 {sum(s.f1 for s in scores) / len(scores):.3f} "
               "(tagged at probability >= 0.5)")
    click.echo("fitting on every example", err=True)
    model = learn.fit(examples)
    click.echo(learn.adapt_to_stored(model, every_stored(storage, "adapting the model",
                                                         progress=sys.stderr.isatty())))
    learn.save(model, settings.model_path)
    click.echo(f"saved {settings.model_path}")


@cli.group()
def sources() -> None:
    """Feed sources (RSS/Atom): add, list, check, remove, import, export.

    Sources in the config's [[sources]] are kept in step with it; the ones added here are
    stored and kept until removed.
    """


@sources.command("add")
@click.argument("url")
@click.option("--name", help="A short unique name (default: host and path of the URL).")
@click.option("--language", help="Force the language (default: declared, checked by detection).")
@click.option("--topic", "topics", multiple=True, help="Put every article in this topic (repeat).")
@click.option("--full-text", is_flag=True, help="Fetch each article page when the feed has "
                                                "only summaries.")
@with_settings
def sources_add(settings: Settings, storage: Storage, url: str, name: str | None,
                language: str | None, topics: tuple[str, ...], full_text: bool) -> None:
    """Add (or re-enable) the feed at URL."""
    if not url.startswith(("http://", "https://")):
        raise click.ClickException(f"{url!r} is not an http:// or https:// URL")
    unknown = [t for t in topics if settings.topic(t) is None]
    if unknown:
        raise click.ClickException(f"unknown topic(s) {', '.join(unknown)}; see `nashra topics`")
    source = storage.add_source(Source(
        name=name or source_name(url), url=url, language=language, topics=topics,
        full_text=full_text, min_interval=settings.fetch.min_interval,
        max_interval=settings.fetch.max_interval))
    click.echo(f"added {source.name}: {source.url} (first poll on the next run or ingest)")


@sources.command("list")
@with_settings
def sources_list(settings: Settings, storage: Storage) -> None:
    """Each source's state: last fetch and status, items, errors, next poll."""
    sync_config_sources(settings, storage)
    rows = storage.sources()
    if not rows:
        click.echo("no sources yet; add one with `nashra sources add URL`")
    for source in rows:
        state = "enabled" if source.enabled else "DISABLED"
        click.echo(f"{source.name}  [{state}, {source.origin}]  {source.url}")
        click.echo(f"    last fetch {_when(source.last_fetch)}  status {source.last_status or '-'}"
                   f"  items {source.item_count}  errors {source.error_count}"
                   f"  next poll {_when(source.next_poll)}")
        if source.last_error:
            click.echo(f"    last error: {source.last_error}")
        if source.bozo:
            click.echo(f"    feed problem: {source.bozo}")


@sources.command("remove")
@click.argument("name_or_url")
@with_settings
def sources_remove(settings: Settings, storage: Storage, name_or_url: str) -> None:
    """Stop polling a source (by name or URL); its articles stay stored."""
    match = next((s for s in storage.sources() if name_or_url in (s.name, s.url)), None)
    if match is None or not storage.remove_source(match.name):
        raise click.ClickException(f"no source {name_or_url!r}; see `nashra sources list`")
    if match.origin == "config":
        click.echo(f"note: {match.name} is in the config and comes back unless removed there",
                   err=True)
    click.echo(f"removed {match.name}")


@sources.command("check")
@click.argument("url")
@with_settings
def sources_check(settings: Settings, storage: Storage, url: str) -> None:
    """Fetch and parse URL once, store nothing: what would be ingested, and every problem."""
    with make_fetcher(settings) as fetcher:
        check = check_source(settings, fetcher, url)
    result, feed = check.fetch, check.feed
    click.echo(f"HTTP {result.status or '-'} from {result.final_url}"
               + (f" (moved permanently to {result.moved_to})" if result.moved_to else ""))
    if result.error:
        raise click.ClickException(result.error)
    if not feed.version and not check.articles:
        raise click.ClickException(f"{url}: {feed.bozo}")
    click.echo(f"feed: {feed.title or '(no title)'}  format {feed.version or 'none'}  "
               f"declared language {feed.language or '-'}  entries {len(check.articles)}")
    for problem in dict.fromkeys(([feed.bozo] if feed.bozo else []) + feed.problems):
        click.echo(f"problem: {problem}")
    for article in check.articles:
        estimated = " (no date: first seen)" if article.date_estimated else ""
        click.echo(f"  {article.published:%Y-%m-%d %H:%M}{estimated}  {article.language}  "
                   f"[{','.join(article.topics)}]  {article.title}")


@sources.command("import")
@click.argument("opml", type=click.File("rb"))
@with_settings
def sources_import(settings: Settings, storage: Storage, opml) -> None:
    """Add every feed listed in an OPML file."""
    parsed = listparser.parse(opml.read())
    if parsed.bozo and not parsed.feeds:
        raise click.ClickException(f"{opml.name}: not an OPML subscription list "
                                   f"({parsed.bozo_exception})")
    known = {s.url for s in storage.sources()}
    added = 0
    for feed in parsed.feeds:
        if feed.url in known:
            continue
        storage.add_source(Source(name=feed.title or source_name(feed.url), url=feed.url,
                                  min_interval=settings.fetch.min_interval,
                                  max_interval=settings.fetch.max_interval))
        added += 1
    click.echo(f"imported {added} new source(s) of {len(parsed.feeds)} in {opml.name}")


@sources.command("export")
@with_settings
def sources_export(settings: Settings, storage: Storage) -> None:
    """Print every source as an OPML 2.0 subscription list."""
    click.echo(sources_opml(settings, storage.sources()), nl=False)


@cli.group()
def partners() -> None:
    """Partner sites: add, list, rotate, remove.

    A partner pulls its topics with a secret token, printed once by `add` and `rotate`;
    only a keyed hash of it is stored. A running server follows changes within seconds.
    """


def _partner(storage: Storage, name: str) -> Partner:
    found = next((p for p in storage.partners() if p.name == name), None)
    if found is None:
        raise click.ClickException(f"no partner {name!r}; see `nashra partners list`")
    return found


def _show_token(settings: Settings, partner: Partner, token: str) -> None:
    click.echo(f"token for {partner.name} (shown once, keep it secret): {token}")
    for slug in partner.topics:
        for kind in ("rss", "atom"):
            click.echo(f"  {settings.base_url}/p/{token}/{feed_path(slug, kind)}")
    click.echo(f"or GET {settings.base_url}/partner/topics/<slug>.atom with the header "
               "'Authorization: Bearer <token>'")


@partners.command("add")
@click.argument("name")
@click.option("--topic", "topics", multiple=True, required=True,
              help="A topic the partner may pull (repeat).")
@click.option("--summary-only", is_flag=True, help="Summaries instead of the full text.")
@click.option("--limit", type=click.IntRange(min=1),
              help="Items per feed (default and most: [publish] items_per_feed).")
@click.option("--utm-source", help="Tag article links: utm_source=THIS, utm_medium=syndication, "
                                   "utm_campaign=<topic>.")
@click.option("--rate", type=click.IntRange(min=1), default=60, show_default=True,
              help="Pulls a minute; more get 429 with Retry-After.")
@with_settings
def partners_add(settings: Settings, storage: Storage, name: str, topics: tuple[str, ...],
                 summary_only: bool, limit: int | None, utm_source: str | None,
                 rate: int) -> None:
    """Add partner NAME and print its token."""
    if any(p.name == name for p in storage.partners()):
        raise click.ClickException(f"partner {name!r} exists; `nashra partners rotate {name}` "
                                   "gives it a new token")
    unknown = [t for t in topics if settings.topic(t) is None]
    if unknown:
        raise click.ClickException(f"unknown topic(s) {', '.join(unknown)}; see `nashra topics`")
    token = new_token()
    partner = Partner(name, hash_token(storage.partner_key(), token), tuple(dict.fromkeys(topics)),
                      full_content=not summary_only,
                      item_limit=limit or settings.items_per_feed, utm_source=utm_source,
                      rate=rate)
    storage.save_partner(partner)
    _show_token(settings, partner, token)


@partners.command("list")
@with_settings
def partners_list(settings: Settings, storage: Storage) -> None:
    """Each partner: topics, content, item limit, link tagging, rate (never the token)."""
    rows = storage.partners()
    if not rows:
        click.echo("no partners yet; add one with `nashra partners add NAME --topic T`")
    for p in rows:
        content = "full text" if p.full_content else "summaries"
        tagging = f"utm_source={p.utm_source}" if p.utm_source else "untagged links"
        click.echo(f"{p.name}  [{','.join(p.topics)}]  {content}, {p.item_limit} items, "
                   f"{tagging}, {p.rate}/min")


@partners.command("rotate")
@click.argument("name")
@with_settings
def partners_rotate(settings: Settings, storage: Storage, name: str) -> None:
    """Give partner NAME a new token; the old one stops working."""
    token = new_token()
    partner = replace(_partner(storage, name),
                      token_hash=hash_token(storage.partner_key(), token))
    storage.save_partner(partner)
    _show_token(settings, partner, token)


@partners.command("remove")
@click.argument("name")
@with_settings
def partners_remove(settings: Settings, storage: Storage, name: str) -> None:
    """Remove partner NAME; its token stops working."""
    if not storage.remove_partner(name):
        raise click.ClickException(f"no partner {name!r}; see `nashra partners list`")
    click.echo(f"removed {name}")


@cli.group()
def db() -> None:
    """The database itself: move an embedded installation to PostgreSQL."""


@db.command("migrate")
@click.option("--from", "source", required=True, metavar="URL",
              help="The database to copy, e.g. sqlite:///var/nashra.db.")
@click.option("--to", "target", required=True, metavar="URL",
              help="A new database, or one this command filled before, e.g. "
                   "postgresql://nashra@db.example.org/nashra.")
def db_migrate(source: str, target: str) -> None:
    """Copy every table of --from into --to: articles, topics, sources, documents, partners.

    Running it again copies nothing twice. Point the config's [storage] url at --to after.
    """
    from tqdm import tqdm

    from storage.copy import copy_database

    bars: dict[str, tqdm] = {}

    def progress(table: str, done: int, total: int) -> None:
        bar = bars.setdefault(table, tqdm(total=total, desc=table, unit=" rows", disable=None))
        bar.update(done - bar.n)

    try:
        copied = copy_database(source, target, progress)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for bar in bars.values():
            bar.close()
    for table, rows in copied.items():
        click.echo(f"{table}: {rows} rows")


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "never"


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="nashra")
