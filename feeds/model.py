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
class DedupeKeys:
    """What the dedupe stage found for an article, stored beside it (see feeds.clusters).

    `url`, `fingerprint` and `signature` are its keys for later comparisons; `duplicate_of`
    is the canonical article of its cluster (None: it is one), `layer` the comparison that
    matched, and `replaces` a cluster's canonical article that this more complete copy
    takes over from.
    """

    url: str = ""  # canonical URL, "" without one
    fingerprint: str = ""
    signature: bytes = b""
    duplicate_of: str | None = None
    layer: str | None = None  # "url", "text", "near"; "split" once undone by an editor
    similarity: float = 0.0
    containment: float = 0.0
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class Credit:
    """An outlet that carried a story, as feeds name it: origin or "also reported by"."""

    name: str  # the source's title, else its name
    feed_url: str | None  # the source's own feed (None for seeds)
    url: str | None  # the article's page at that outlet
    published: datetime


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
    dedupe: DedupeKeys | None = None  # set by the dedupe stage
    # Read from storage for publishing: this article's outlet, and the cluster's other ones.
    origin: Credit | None = None
    reported_by: tuple[Credit, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", article_id(self.source, self.key))

    def with_topics(self, topics: tuple[str, ...]) -> Article:
        return replace(self, topics=topics)

    @property
    def other_outlets(self) -> tuple[Credit, ...]:
        """The outlets that also carried this story, each once, earliest first."""
        own = self.origin.name if self.origin else None
        seen: dict[str, Credit] = {}
        for credit in self.reported_by:
            if credit.name != own:
                seen.setdefault(credit.name, credit)
        return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A gazetteer entity inside a topic rule, by its tag ("org:isis")."""

    tag: str


@dataclass(frozen=True, slots=True)
class Rule:
    """A topic's boolean rule: `any`, `all` or `none` of its parts hold.

    A part is a term (a word or phrase, matched Arabic-aware), an entity, or a nested rule.
    """

    op: str  # "any", "all" or "none"
    parts: tuple[str | EntityRef | Rule, ...]


@dataclass(frozen=True, slots=True)
class Topic:
    """A published topic: its feed metadata per language, and the rule that selects it.

    Plain `terms` stand for the rule `any` of them.
    """

    slug: str
    language: str
    titles: dict[str, str]
    descriptions: dict[str, str]
    terms: tuple[str, ...] = ()
    min_score: int = 2
    rule: Rule | None = None

    def __post_init__(self) -> None:
        if self.rule is None:
            object.__setattr__(self, "rule", Rule("any", tuple(self.terms)))

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
    max_age: int = 60  # seconds a client or cache may reuse it (Cache-Control)


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


@dataclass(frozen=True, slots=True)
class Partner:
    """A site that pulls topic feeds with a secret token; only the token's hash is kept.

    `item_limit` is capped by `[publish] items_per_feed` when served; `rate` is pulls a
    minute (the size and refill of the partner's token bucket).
    """

    name: str
    token_hash: str
    topics: tuple[str, ...]
    full_content: bool = True
    item_limit: int = 50
    utm_source: str | None = None  # article links get utm_source/medium/campaign when set
    rate: int = 60
