"""The `nashra` command."""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import replace
from pathlib import Path

import click

from feeds import __version__
from feeds.config import ConfigError, Settings, load_settings
from feeds.pipeline import build_documents, ingest_seeds, write_documents
from feeds.publish import feed_path
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
    """
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


@cli.command()
@click.option("--host", help="Address to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default from config: 8080).")
@with_settings
def run(settings: Settings, storage: Storage, host: str | None, port: int | None) -> None:
    """Ingest seeds, publish the topic feeds and serve them until Ctrl-C.

    Seeds are scanned again every [seeds] scan_interval seconds; only topics whose
    articles changed are rebuilt.
    """
    import scheduler

    scheduler.run(settings.with_server(host, port), storage)


@cli.command()
@with_settings
def ingest(settings: Settings, storage: Storage) -> None:
    """One pass over the seeds folder, then exit (publishes what changed)."""
    report = ingest_seeds(settings, storage, progress=sys.stderr.isatty())
    build_documents(settings, storage)
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
        for kind in ("rss", "atom"):
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
        click.echo(f"{article.published:%Y-%m-%d %H:%M}  {article.id[:8]}  "
                   f"[{','.join(article.topics)}]  {article.title}")


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="nashra")
