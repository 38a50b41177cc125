"""Seed files -> `Article`s: front matter, title, paragraphs and subheadings, no site chrome.

The format is documented in seeds/README.md. A seed that cannot be read becomes a
`SeedProblem` naming the file and the fix; it never stops the rest of the folder.
"""

from __future__ import annotations

import hashlib
import html
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import yaml

from feeds.clean import extract_article, repeated_edge_lines, strip_chrome
from feeds.model import Article

SEED_SOURCE = "seeds"
TEXT_SUFFIXES = (".txt",)
HTML_SUFFIXES = (".html", ".htm")
SEED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES
TITLE_MAX_CHARS = 300
SUBHEADING_MAX_CHARS = 100
SUBHEADING_MAX_WORDS = 12
SENTENCE_END = tuple(".!?؟…:;؛،,")
FRONT_MATTER_KEYS = {"title", "url", "published", "updated", "author", "source", "language",
                     "topics"}

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SeedError(ValueError):
    """Why one seed file cannot be ingested, phrased as problem and fix."""


@dataclass(frozen=True)
class SeedProblem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"seed {self.path}: {self.reason}"


@dataclass
class SeedFile:
    """One readable seed: its front matter and lines, before they become an Article."""

    path: Path
    key: str
    digest: str
    modified: datetime
    meta: dict
    lines: list[str] = field(repr=False)
    page: bytes | None = field(default=None, repr=False)  # an HTML seed's bytes

    @property
    def site(self) -> str:
        return str(self.meta.get("source") or SEED_SOURCE)


@dataclass
class SeedScan:
    """What a pass over the seed folder found."""

    changed: list[SeedFile]
    unchanged: int
    problems: list[SeedProblem]
    site_chrome: dict[str, frozenset[str]]

    def articles(self) -> Iterator[Article | SeedProblem]:
        for seed in self.changed:
            try:
                yield seed_article(seed, self.site_chrome.get(seed.site, frozenset()))
            except SeedError as exc:
                yield SeedProblem(seed.path, str(exc))


def seed_paths(folder: Path) -> list[Path]:
    """The seed files under `folder`, in a stable order; README and hidden paths excluded."""
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in SEED_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not p.stem.upper().startswith("README")
    )


def scan_folder(folder: Path, known: Mapping[str, str], max_bytes: int) -> SeedScan:
    """Read every seed under `folder`; those whose digest is in `known` count as unchanged.

    All seeds are read so that lines a site repeats at the edges of many of its articles
    are learned from the whole folder, not only from the files that changed.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"seeds folder {folder} does not exist; create it or set "
                                "[seeds] dir in the config")
    changed, problems, unchanged = [], [], 0
    edges: dict[str, list[list[str]]] = defaultdict(list)
    for path in seed_paths(folder):
        try:
            seed = read_seed(path, path.relative_to(folder).as_posix(), max_bytes)
        except SeedError as exc:
            problems.append(SeedProblem(path, str(exc)))
            continue
        edges[seed.site].append(seed.lines)
        if known.get(seed.key) == seed.digest:
            unchanged += 1
        else:
            changed.append(seed)
    chrome = {site: repeated_edge_lines(docs) for site, docs in edges.items()}
    return SeedScan(changed, unchanged, problems, chrome)


def read_seed(path: Path, key: str, max_bytes: int) -> SeedFile:
    size = path.stat().st_size
    if size > max_bytes:
        raise SeedError(f"{size:,} bytes is over the {max_bytes:,}-byte limit; split the file "
                        "or raise [seeds] max_bytes")
    data = path.read_bytes()
    if not data.strip():
        raise SeedError("the file is empty; put the title on the first line, then the text")
    if b"\x00" in data[:8192]:
        raise SeedError("binary file (it contains NUL bytes); seeds are UTF-8 text")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if path.suffix.lower() in HTML_SUFFIXES:  # the page declares its own encoding
        return SeedFile(path, key, digest, modified, meta={}, lines=[], page=data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedError(f"not valid UTF-8 (bad byte at offset {exc.start}); "
                        "save the file as UTF-8") from None
    meta, body = split_front_matter(text)
    lines = [line.strip() for line in body.splitlines()]
    return SeedFile(path, key, digest, modified, meta, lines)


def split_front_matter(text: str) -> tuple[dict, str]:
    """(front matter mapping, rest of the text); the mapping is empty without `---` lines."""
    if not text.startswith("---"):
        return {}, text
    head, sep, rest = text[3:].partition("\n---")
    if not sep:
        raise SeedError("front matter opened with '---' is never closed; add a '---' line")
    try:
        meta = yaml.load(head, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise SeedError(f"front matter is not valid 'key: value' lines: {exc}") from None
    if not isinstance(meta, dict):
        raise SeedError("front matter must be 'key: value' lines")
    unknown = sorted(set(map(str, meta)) - FRONT_MATTER_KEYS)
    if unknown:
        raise SeedError(f"unknown front matter key(s) {', '.join(unknown)}; "
                        f"use {', '.join(sorted(FRONT_MATTER_KEYS))}")
    return meta, rest.partition("\n")[2]


def seed_article(seed: SeedFile, site_chrome: frozenset[str] = frozenset()) -> Article:
    """The Article a seed describes: first line the title, blocks as <p>, short ones as <h2>."""
    if seed.page is not None:
        return html_seed_article(seed)
    lines = strip_chrome(seed.lines, site_chrome)
    meta = seed.meta
    title = str(meta.get("title") or (lines[0] if lines else "")).strip()
    if not title:
        raise SeedError("no title; put the title alone on the first line")
    if len(title) > TITLE_MAX_CHARS:
        raise SeedError(f"no title: the first line is {len(title)} characters long; put the "
                        "title alone on the first line")
    body_lines = lines[1:] if not meta.get("title") else lines
    blocks = _blocks(body_lines)
    published = _date(meta, "published") or seed.modified
    return Article(
        source=SEED_SOURCE,
        key=seed.key,
        title=title,
        content_html=_html(blocks),
        summary="",
        language=str(meta.get("language") or ""),
        published=published,
        updated=max(_date(meta, "updated") or published, published),
        url=str(meta["url"]) if meta.get("url") else None,
        author=str(meta.get("author") or meta.get("source") or "") or None,
        topics=_topics(meta),
        content_hash=seed.digest,
    )


def html_seed_article(seed: SeedFile) -> Article:
    """A saved web page: its main text and metadata, extracted as for full-text sources."""
    extracted = extract_article(seed.page)
    if extracted is None or not extracted.title:
        raise SeedError("no article text or title found in this HTML page; save the "
                        "article page itself, or convert it to a .txt seed")
    published = extracted.published or seed.modified
    return Article(
        source=SEED_SOURCE, key=seed.key, title=extracted.title,
        content_html=extracted.content_html, summary="", language="",
        published=published, updated=max(seed.modified, published),
        url=extracted.url, author=extracted.author, content_hash=seed.digest,
    )


def _blocks(lines: list[str]) -> list[str]:
    """Paragraph texts: runs of non-blank lines, joined with spaces."""
    blocks, current = [], []
    for line in [*lines, ""]:
        if line:
            current.append(line)
        elif current:
            blocks.append(" ".join(current))
            current = []
    return blocks


def is_subheading(block: str) -> bool:
    return (len(block) <= SUBHEADING_MAX_CHARS and len(block.split()) <= SUBHEADING_MAX_WORDS
            and not block.endswith(SENTENCE_END))


def _html(blocks: list[str]) -> str:
    last = len(blocks) - 1
    return "\n".join(
        f"<h2>{html.escape(b, quote=False)}</h2>" if i < last and is_subheading(b)
        else f"<p>{html.escape(b, quote=False)}</p>"
        for i, b in enumerate(blocks)
    )


def _date(meta: dict, key: str) -> datetime | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        parsed = _parse_date_text(str(value))
        if parsed is None:
            raise SeedError(f"front matter {key}: {value!r} is not a date; "
                            "write it as 2025-05-08 or 2025-05-08T10:30:00+01:00")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_date_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def _topics(meta: dict) -> tuple[str, ...]:
    value = meta.get("topics") or ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise SeedError("front matter topics: write a list such as [security, morocco]")
    return tuple(str(t).strip() for t in value if str(t).strip())
