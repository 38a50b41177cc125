"""The dedupe stage: each story once, in a cluster that credits every outlet that carried it.

feeds.dedupe compares; this module keeps what the comparisons need between batches (the
window's canonical URLs, fingerprints and signatures, and which cluster each article is
in) and decides, for a batch about to be stored, which new articles repeat a kept one.

- A new article that matches one in the window joins that article's cluster. The
  cluster's canonical article is its earliest, unless another is much more complete (a
  full text beside a summary; `dedupe.leads`); a newcomer that should lead takes over
  (`DedupeKeys.replaces`). Storage applies the same rule when it settles the cluster, so
  whichever process stores a copy first, the same copy leads.
- An article its own source sent before (same source, same guid: the same id) is an
  update, never a duplicate: it keeps its cluster and only its keys are refreshed.
- The window (default 14 days, by publication time) bounds memory. After a restart it is
  rebuilt from the stored keys, not from the texts, and decides as before.
- On a shared database (PostgreSQL) the window is the database's: each batch reads the
  stored articles sharing a URL, a text or an LSH band with it, so workers on several
  machines find each other's copies. The decisions are the same code either way.

Seeds and feed sources share one `Deduper` per storage, so they dedupe against each other.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from feeds import dedupe
from feeds.clean import plain_text
from feeds.config import DedupeSettings
from feeds.model import Article, DedupeKeys
from storage import Storage
from storage.store import WindowRow

# A body shorter than this is compared together with its title (see dedupe_text).
SHORT_BODY_WORDS = 40


def dedupe_text(title: str, content_html: str, summary: str) -> str:
    """The text compared: the body (else the summary), with the title when it is short.

    Republishers rewrite titles most, so a real body is compared alone. A short one may be
    a feed's boilerplate ("Source: ... Read the full article", the same in every item, as
    real Hebrew feeds have), and then the title is what tells stories apart.
    """
    body = plain_text(content_html) or summary
    return body if body.count(" ") >= SHORT_BODY_WORDS else f"{title}\n{body}"


def _ready(article: Article) -> tuple[dedupe.Prepared, DedupeKeys]:
    """What dedupe decides on, and the keys it stores: from the keys pipeline.Preparer put
    on the article (for a feed, in a parsing process), else computed here."""
    keys = article.dedupe
    if keys is None or not keys.signature:
        keys = dedupe_keys(article.url, article.title, article.content_html, article.summary)
    keys = DedupeKeys(keys.url, keys.fingerprint, keys.signature)  # no earlier decision
    return _prepared_from(keys), keys


def _prepared_from(keys: DedupeKeys) -> dedupe.Prepared:
    return dedupe.Prepared(keys.url, keys.fingerprint, dedupe.Signature.from_bytes(keys.signature))


def _keys(prepared: dedupe.Prepared) -> DedupeKeys:
    return DedupeKeys(prepared.url, prepared.fingerprint, prepared.signature.to_bytes())


def dedupe_keys(url: str | None, title: str, content_html: str, summary: str) -> DedupeKeys:
    """An article's canonical URL, exact fingerprint and MinHash signature."""
    return _keys(dedupe.prepare(url, dedupe_text(title, content_html, summary)))


@dataclass(slots=True)
class _Member:
    """What the window remembers of one stored article."""

    root: str | None  # its cluster's canonical article; None when it is one
    size: int  # shingles in its text
    published: datetime


class Deduper:
    """The dedupe window of one storage, and the decisions for each batch stored into it.

    `lock` serializes decide-and-store in this process: two polls storing copies of one
    story at once must not both become canonical. Across processes the database decides
    (Storage.save_articles calls `recheck`). With a shared `storage`, the window is read
    from it for each batch instead of kept in memory, and its stored LSH bands expire
    with the window.
    """

    def __init__(self, window: timedelta = timedelta(days=14),
                 thresholds: dedupe.Thresholds | None = None,
                 storage: Storage | None = None):
        self.window = window
        self.thresholds = thresholds or dedupe.Thresholds()
        self.storage = storage
        self.lock = threading.Lock()
        self._clear()
        self._expired = datetime.now(UTC) - timedelta(hours=1)  # the first batch expires

    def _clear(self) -> None:
        self.index = dedupe.NearDuplicateIndex(window=self.window, thresholds=self.thresholds)
        self.urls: dict[str, str] = {}
        self.fingerprints: dict[str, str] = {}
        self.members: dict[str, _Member] = {}
        self.clusters: dict[str, set[str]] = {}  # root -> the members whose root it is

    @classmethod
    def load(cls, storage: Storage, window: timedelta = timedelta(days=14),
             thresholds: dedupe.Thresholds | None = None,
             now: datetime | None = None) -> Deduper:
        """The window as stored: every article published within `window` of `now`."""
        deduper = cls(window, thresholds)
        deduper._fill(storage.dedupe_window((now or datetime.now(UTC)) - window))
        return deduper

    def _fill(self, rows: Iterable[WindowRow]) -> None:
        for row in sorted(rows, key=lambda r: (r.published, r.id)):
            self.remember(row.id, row.published, row.keys)

    def remember(self, article_id: str, published: datetime, keys: DedupeKeys,
                 signature: dedupe.Signature | None = None) -> None:
        """Put a stored article into the window, in the cluster its keys name."""
        signature = signature or dedupe.Signature.from_bytes(keys.signature)
        self._leave(article_id)
        self.members[article_id] = _Member(keys.duplicate_of, signature.size, published)
        if keys.duplicate_of:
            self.clusters.setdefault(keys.duplicate_of, set()).add(article_id)
        self.index.add(article_id, published, signature)
        if keys.url:
            self.urls.setdefault(keys.url, article_id)
        if keys.fingerprint:
            self.fingerprints.setdefault(keys.fingerprint, article_id)

    def root(self, article_id: str) -> str:
        member = self.members.get(article_id)
        return member.root if member is not None and member.root else article_id

    def assign(self, batch: Sequence[Article], stored: Mapping[str, DedupeKeys]
               ) -> list[Article]:
        """`batch` with dedupe keys set; `stored` holds the keys of those already stored.

        Call under `lock`, and store the result before releasing it.
        """
        now = datetime.now(UTC)
        if now - self._expired >= timedelta(hours=1):
            self.expire(now)
        ready = [_ready(article) for article in batch]
        if self.storage is not None:  # the window is what the database holds near the batch
            self._clear()
            self._fill(self.storage.dedupe_window(now - self.window, [k for _, k in ready]))
        decided = []
        for article, (prepared, keys) in zip(batch, ready, strict=True):
            before = stored.get(article.id)
            if before is not None:  # an update by its own source keeps its cluster
                keys = replace(keys, duplicate_of=before.duplicate_of, layer=before.layer,
                               similarity=before.similarity, containment=before.containment)
            else:
                keys = self._decide(article, prepared, keys)
            if now - article.published <= self.window:  # as the database's window would
                self.remember(article.id, article.published, keys, prepared.signature)
            if keys.replaces:
                self._take_over(keys.replaces, article.id)
            decided.append(replace(article, dedupe=keys))
        return decided

    def recheck(self, article: Article, rows: Sequence[WindowRow]) -> DedupeKeys:
        """`article`'s keys decided again against stored `rows`, as `assign` decides.

        For a new story stored alone while another process stored articles near it:
        Storage.save_articles asks, in its transaction, once those are committed.
        """
        since = datetime.now(UTC) - self.window
        window = Deduper(self.window, self.thresholds)
        window._fill(row for row in rows if row.published >= since)
        return window._decide(article, _prepared_from(article.dedupe), article.dedupe)

    def _decide(self, article: Article, prepared: dedupe.Prepared, keys: DedupeKeys
                ) -> DedupeKeys:
        verdict = dedupe.decide(prepared, self.index, self.urls, self.fingerprints, article.id)
        if verdict.duplicate_of is None:
            return keys
        root = self.root(verdict.duplicate_of)
        found = replace(keys, layer=verdict.layer, similarity=verdict.similarity,
                        containment=verdict.containment)
        canonical = self.members.get(root)
        newcomer = dedupe.Copy(article.id, article.published, prepared.signature.size)
        if canonical is not None and dedupe.leads(
                newcomer, dedupe.Copy(root, canonical.published, canonical.size)):
            return replace(found, replaces=root)
        return replace(found, duplicate_of=root)

    def _take_over(self, old_root: str, new_root: str) -> None:
        """`new_root` leads the cluster `old_root` led: old_root and its members join it."""
        moved = self.clusters.pop(old_root, set())
        if old_root in self.members:
            moved.add(old_root)
        for article_id in moved:
            self.members[article_id].root = new_root
        self.clusters.setdefault(new_root, set()).update(moved)

    def _leave(self, article_id: str) -> None:
        """Take `article_id` out of the cluster it is filed under (it expires, or is filed anew)."""
        member = self.members.get(article_id)
        if member is not None and member.root:
            others = self.clusters.get(member.root, set())
            others.discard(article_id)
            if not others:
                self.clusters.pop(member.root, None)

    def expire(self, now: datetime) -> int:
        """Drop what fell out of the window, here or in the stored LSH bands; memory and
        the bands stay bounded however long we run."""
        self._expired = now
        if self.storage is not None:
            self.storage.expire_dedupe_bands(now - self.window)
        old = [i for i, m in self.members.items() if now - m.published > self.window]
        for article_id in old:
            self.index.remove(article_id)
            self._leave(article_id)
            del self.members[article_id]
        if old:
            self.urls = {k: v for k, v in self.urls.items() if v in self.members}
            self.fingerprints = {k: v for k, v in self.fingerprints.items()
                                 if v in self.members}
        return len(old)


_DEDUPERS: weakref.WeakKeyDictionary[Storage, Deduper] = weakref.WeakKeyDictionary()
_LOADING = threading.Lock()


def deduper_for(storage: Storage, settings: DedupeSettings) -> Deduper:
    """The one Deduper of `storage` in this process, loaded from it on first use."""
    with _LOADING:
        deduper = _DEDUPERS.get(storage)
        if deduper is None:
            thresholds = dedupe.Thresholds(similarity=settings.similarity,
                                           containment=settings.containment)
            window = timedelta(days=settings.window_days)
            deduper = (Deduper(window, thresholds, storage) if storage.shared
                       else Deduper.load(storage, window, thresholds))
            _DEDUPERS[storage] = deduper
        return deduper


def forget_deduper(storage: Storage) -> None:
    """Drop the window of `storage`, to reload it as stored (after a failed batch)."""
    with _LOADING:
        _DEDUPERS.pop(storage, None)


def explain_pair(a: Article, b: Article, settings: DedupeSettings) -> list[str]:
    """Lines saying whether two stored articles are one story, layer by layer."""
    thresholds = dedupe.Thresholds(similarity=settings.similarity,
                                   containment=settings.containment)
    keys_a, keys_b = a.dedupe or DedupeKeys(), b.dedupe or DedupeKeys()
    figures = dedupe.explain(dedupe_text(a.title, a.content_html, a.summary),
                             dedupe_text(b.title, b.content_html, b.summary), thresholds)
    same_url = bool(keys_a.url) and keys_a.url == keys_b.url
    a_in_b, b_in_a = figures["containment"]
    layers = [("same source and guid", a.id == b.id),
              ("url", same_url), ("text", figures["same_text"]),
              ("near", figures["near_duplicate"])]
    layer = next((name for name, matched in layers if matched), None)
    verdict = f"duplicates (layer: {layer})" if layer else "not duplicates"
    return [
        f"verdict: {verdict}",
        f"  url    canonical URLs {'equal' if same_url else 'differ'}: "
        f"{keys_a.url or '-'} | {keys_b.url or '-'}",
        f"  text   normalized texts {'equal' if figures['same_text'] else 'differ'}",
        f"  near   similarity {figures['similarity']:.2f} (bar {thresholds.similarity}), "
        f"containment A in B {a_in_b:.2f}, B in A {b_in_a:.2f} (bar {thresholds.containment}),"
        f" shingles {figures['shingles'][0]} / {figures['shingles'][1]}",
        f"stored: {_cluster_line(a, b)}",
    ]


def _cluster_line(a: Article, b: Article) -> str:
    root_a = (a.dedupe.duplicate_of if a.dedupe else None) or a.id
    root_b = (b.dedupe.duplicate_of if b.dedupe else None) or b.id
    if root_a != root_b:
        return "in different clusters"
    member = b if root_a == a.id else a
    keys = member.dedupe
    how = f" (by {keys.layer}, similarity {keys.similarity:.2f})" if keys and keys.layer else ""
    return f"one cluster, canonical {root_a[:8]}{how}"
