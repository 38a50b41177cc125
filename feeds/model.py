"""The values that flow through the pipeline: one `Article`, plus the topics it lands in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

# Namespace for article ids: uuid5(namespace, "source\x00key") never changes for a given
# source and key, so a guid survives rebuilds, restarts and edits of the article.
ARTICLE_NAMESPACE = uuid.UUID("6f1d3c52-2b8e-5a4e-9a51-6e6173687261")


def article_id(source: str, key: str) -> str:
    """The stable id of the article that `source` knows as `key`."""
    return str(uuid.uuid5(ARTICLE_NAMESPACE, f"{source}\x00{key}"))


@dataclass(frozen=True, slots=True)
class Enclosure:
    """A media file attached to an article (podcast audio, lead image...)."""

    url: str
    media_type: str = "application/octet-stream"
    length: int = 0


@dataclass(frozen=True, slots=True)
class Article:
    """One news article, from whichever source, as every stage sees it.

    `content_html` is sanitized HTML without a direction wrapper: direction is added at
    publish time from `language`, so the stored body stays reusable in every format.
    """

    source: str
    key: str
    title: str
    content_html: str
    summary: str
    language: str
    published: datetime
    updated: datetime
    url: str | None = None
    author: str | None = None
    topics: tuple[str, ...] = ()
    content_hash: str = ""
    categories: tuple[str, ...] = ()  # the source's own category labels
    enclosures: tuple[Enclosure, ...] = ()
    date_estimated: bool = False  # the source gave no date: published is first-seen time
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", article_id(self.source, self.key))

    def with_topics(self, topics: tuple[str, ...]) -> Article:
        return replace(self, topics=topics)


@dataclass(frozen=True, slots=True)
class Topic:
    """A published topic: its feed metadata per language, and the terms that select it."""

    slug: str
    language: str
    titles: dict[str, str]
    descriptions: dict[str, str]
    terms: tuple[str, ...]
    min_score: int = 2

    @property
    def title(self) -> str:
        return self.titles.get(self.language) or next(iter(self.titles.values()))

    @property
    def description(self) -> str:
        return self.descriptions.get(self.language) or next(iter(self.descriptions.values()))


@dataclass(frozen=True, slots=True)
class Document:
    """A published file (feed, OPML, index page) as bytes, ready to serve or write out.

    `built_from` fingerprints the inputs, so an unchanged topic is not rebuilt and a
    rebuild of the same inputs gives the same bytes.
    """

    path: str
    media_type: str
    body: bytes
    etag: str
    last_modified: datetime
    built_from: str


@dataclass(frozen=True, slots=True)
class Source:
    """A feed Nashra polls: what the config or `nashra sources add` says, plus polling state.

    The state fields (validators, errors, next poll) are written only by storage after
    each fetch, so a restart carries on where the last run stopped.
    """

    name: str
    url: str
    kind: str = "feed"
    title: str | None = None
    language: str | None = None
    topics: tuple[str, ...] = ()
    full_text: bool = False
    min_interval: int = 900
    max_interval: int = 86400
    enabled: bool = True
    origin: str = "cli"  # "config" sources follow the config file; "cli" ones are kept
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    error_count: int = 0
    next_poll: datetime | None = None
    interval: float | None = None
    item_count: int = 0
    bozo: str | None = None
