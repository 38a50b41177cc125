"""Deduplication across sources: each story once, led by its earliest copy, all outlets credited.

Three layers, cheapest first; the first that matches decides:

- ``url``: the same `canonical_url` (courlan's normalization, plus what it lacks: https,
  no ``www.``, no trailing slash or fragment, tracking parameters and AMP variants gone).
- ``text``: the same `text_fingerprint`, a hash of `normalize_text` (feeds.text.fold for
  the Arabic letters, accents and punctuation folded for French and English).
- ``near``: a MinHash `Signature` over 3-word shingles of the normalized text, looked up in
  a `NearDuplicateIndex` (LSH band keys in a sorted array, signatures in one numpy
  matrix) and verified
  on the candidates: Jaccard for rewrites, containment for a prefix or summary of the other.

API, all pure (the caller owns storage and passes state in):

- ``canonical_url(url) -> str``, ``normalize_text(text) -> str``,
  ``text_fingerprint(text) -> str``
- ``signature(text) -> Signature``; ``Signature.to_bytes()`` / ``Signature.from_bytes(b)``
  (4 + 4 x 64 = 260 bytes); ``similarity(a, b)`` and ``containment(a, b)`` estimates.
- ``NearDuplicateIndex(window=14 days, thresholds=Thresholds())``: ``add(id, published,
  sig)`` (re-adding an id replaces it: an edit is an update), ``remove(id)``,
  ``expire(now)``, ``candidates(sig) -> ids``, ``best_match(sig) -> Verdict``,
  ``from_signatures([(id, published, bytes), ...])`` to rebuild after a restart.
- ``band_keys(sig)``, ``buckets(signature bytes)``: its LSH keys, which the database's
  ``dedupe_bands`` holds too, so that workers on several machines share one index.
- ``prepare(url, text) -> Prepared(url, fingerprint, signature)``, computed once per
  article; ``decide(prepared, index, urls=..., fingerprints=..., article_id=...)``
  -> ``Verdict(duplicate_of, layer, similarity, containment)``, where `urls` and
  `fingerprints` map the window's canonical URLs and fingerprints to ids.
- ``leads(Copy(id, published, size), Copy(...))``: which of two copies of a story leads
  its cluster.
- ``explain(text_a, text_b)``: the figures for two texts, whatever the thresholds.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from courlan import normalize_url
from courlan.clean import TRACKERS_RE

from feeds.text import FOLD_DROPPED, FOLD_UNFOLDABLE, fold, fold_table

# --- URLs -------------------------------------------------------------------------------

# Tracking and AMP parameters beyond courlan's TRACKERS_RE. (Its strict mode would drop every
# parameter outside a short allowlist, and so merge articles addressed by ?story=.)
_TRACKING = re.compile(
    r"^(utm_\w*|fbclid|gclid|gclsrc|dclid|gbraid|wbraid|msclkid|yclid|igshid|mc_cid|mc_eid"
    r"|_ga|_gl|_hsenc|_hsmi|mkt_tok|ocid|cmpid|ito|s_cid|at_\w+|ns_\w+|spm|share|ref_src"
    r"|ref_url|xtor|__twitter_impression|amp|outputtype|output|amp_js_v|usqp|utm)$",
    re.IGNORECASE,
)
_AMP_VALUES = frozenset({"", "1", "true", "amp", "yes"})
_AMP_SEGMENT = re.compile(r"/amp(?=/|$)|\.amp(?=\.html?$|$)|/amp\.html?$", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """One spelling per page, so the same story linked from two feeds compares equal.

    The scheme becomes https (outlets serve both), and ``www.``/``amp.``/``m.`` hosts, AMP
    paths (``/amp``, ``/amp/``, ``.amp``) and parameters, tracking parameters, fragments and
    trailing slashes go; the remaining query parameters are sorted.
    """
    url = url.strip()
    if not url.isascii() or "%" in url:  # courlan's encoding work; 80 µs, so only when needed
        with suppress(ValueError):  # it refuses some malformed URLs: keep them as they are
            url = normalize_url(url, strict=False, trailing_slash=True)
    parts = urlsplit(url)
    scheme = parts.scheme.lower() or "https"
    host = (parts.hostname or "").lower().rstrip(".")
    for prefix in ("www.", "amp.", "m."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix):]
    port = parts.port if parts.port and parts.port != _DEFAULT_PORTS.get(scheme) else None
    netloc = f"{host}:{port}" if port else host
    path = _AMP_SEGMENT.sub("", parts.path).rstrip("/")
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not (_TRACKING.match(k) or TRACKERS_RE.search(k))
        or (k.lower() == "output" and v.lower() not in _AMP_VALUES)
    )
    if scheme in _DEFAULT_PORTS:
        scheme = "https"
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


# --- Text -------------------------------------------------------------------------------

_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~،؛؟٪٫٬٭۔«»¡¿·—–‐‑‒―‘’‚‛“”„‟…‹›•′″﴾﴿、。"
# Whether a code point belongs to a word: not punctuation, nor anything str.split() splits
# on. Indexed with the code point clipped to the BMP (the last entry, a letter, stands for
# the astral planes).
_IN_WORD = np.ones(0x10000, dtype=bool)
_IN_WORD[[ord(mark) for mark in _PUNCTUATION]] = False
_IN_WORD[[code for code in range(0x10000) if chr(code).isspace()]] = False
_COMBINING = re.compile("[\u0300-\u036f]")


class _Text:
    """A text as compared for duplicates: the code points of its normalized form.

    Kept as one array rather than a list of words: making a str for each of an article's
    300 words, then hashing each in Python, cost more than all the rest of normalizing.
    """

    __slots__ = ("codes",)

    def __init__(self, text: str, folded: bool = False) -> None:
        spaced = _spaced(_code_points(text)) if folded else _folded_and_spaced(text)
        in_word = spaced != 32
        keep = in_word.copy()
        keep[1:] |= in_word[:-1]  # every word and the separator after it
        codes = spaced[keep]
        self.codes = codes[:-1] if len(codes) and codes[-1] == 32 else codes

    def normal(self) -> str:
        """The words separated by one space."""
        return self.codes.tobytes().decode("utf-32-le")

    def shingles(self) -> np.ndarray:
        """The distinct 64-bit hashes of the 3-word shingles (of all words if fewer), sorted.

        A shingle is a span of the normalized text, so it is hashed as one: a polynomial
        hash from differences of a single prefix sum, then mixed to break its linearity.
        """
        bounds = np.flatnonzero(self.codes == 32)
        words = len(bounds) + 1 if len(self.codes) else 0
        if not words:
            return np.empty(0, dtype=np.uint64)
        bounds = np.concatenate(([-1], bounds, [len(self.codes)]))
        span = min(SHINGLE_WORDS, words)
        hashes = _span_hashes(self.codes, bounds[:-span] + 1, bounds[span:])
        hashes ^= hashes >> _SHIFT29
        hashes *= _MIX
        hashes.sort()
        return hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))]


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _spaced(codes: np.ndarray) -> np.ndarray:
    """`codes` with a space for each character outside words."""
    return np.where(_IN_WORD.take(codes, mode="clip"), codes, np.uint32(32))


# Marks in _folded_and_spaced_table, above every code point: a character fold drops, one
# that folds into a Latin letter U+00C0-U+027F (or a surrogate), one fold cannot do by table.
_DROP, _ACCENTED = FOLD_UNFOLDABLE - 2, FOLD_UNFOLDABLE - 1


def _folded_and_spaced(text: str) -> np.ndarray:
    """_spaced(fold(text)) with Latin letters unaccented. Folding, encoding the folded text
    again, then finding its words took a quarter of the time of tagging an article: most
    texts get all three from one lookup per character in a table of fold and _IN_WORD;
    one with accented letters or what fold does not do by table takes the long way."""
    codes = np.frombuffer(unicodedata.normalize("NFKC", text).encode(
        "utf-32-le", "surrogatepass"), dtype=np.uint32)
    spaced = _folded_and_spaced_table().take(codes, mode="clip")
    top = spaced.max(initial=0)
    if top < _DROP:
        return spaced
    if top == _DROP:
        return spaced[spaced != _DROP]
    if top == FOLD_UNFOLDABLE:
        text = fold(text)
        codes = _code_points(text)
        if not ((codes - 0xC0) < 0x1C0).any():
            return _spaced(codes)
    else:  # accented: fold(text) from the same table, then the accents off
        folded = fold_table().take(codes, mode="clip")
        text = folded[folded != FOLD_DROPPED].tobytes().decode("utf-32-le", "surrogatepass")
    return _spaced(_code_points(_COMBINING.sub("", unicodedata.normalize("NFKD", text))))


@lru_cache(maxsize=1)
def _folded_and_spaced_table() -> np.ndarray:
    """feeds.text's fold table with a space for what folds outside words, and the marks."""
    table = fold_table().copy()
    accented = ((table - 0xC0) < 0x1C0) | ((table - 0xD800) < 0x800)
    spaces = (table < FOLD_DROPPED) & ~accented & ~_IN_WORD.take(table, mode="clip")
    table[table == FOLD_DROPPED] = _DROP
    table[accented] = _ACCENTED
    table[spaces] = 32
    return table


def normalize_text(text: str) -> str:
    """Text as compared for duplicates: folded, unaccented, words separated by one space.

    feeds.text.fold does the Arabic (NFKC, tashkeel and tatweel, alef, ya, ta marbuta,
    hamza carriers, Arabic-Indic and Persian digits); French and English lose case and
    accents; every run of punctuation and space becomes one space.
    """
    return _Text(text).normal()


def _fingerprint(normal: str) -> str:
    return hashlib.blake2b(normal.encode(), digest_size=16).hexdigest() if normal else ""


def text_fingerprint(text: str) -> str:
    """The exact-duplicate key: 128-bit BLAKE2b of the normalized text, hex ("" if empty)."""
    return _fingerprint(normalize_text(text))


# --- Signatures -------------------------------------------------------------------------

PERMUTATIONS = 64
SHINGLE_WORDS = 3
_rng = np.random.default_rng(0x4E617368)  # fixed: signatures must survive restarts
# The permutations x -> a x + b modulo 2^32, a odd, one row each: they run down the rows.
_A = _rng.integers(0, 2**32, (PERMUTATIONS, 1), dtype=np.uint32) | np.uint32(1)
_B = _rng.integers(0, 2**32, (PERMUTATIONS, 1), dtype=np.uint32)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BAND_SALT = _rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)
_SHIFT29, _SHIFT32 = np.uint64(29), np.uint64(32)
_EMPTY = np.uint32(0xFFFFFFFF)
_BASE = 0x100000001B3  # the polynomial hash's: odd, so invertible modulo 2^64
_INVERSE = pow(_BASE, -1, 2**64)


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) modulo 2^64."""
    powers = np.full(n, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, out=powers)


# Kept for texts up to 64K characters (1 MB); a longer one gets its own.
_UP = _powers(_BASE, 1 << 16)
_DOWN = _powers(_INVERSE, 1 << 16)


def _span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The polynomial hash modulo 2^64 of each span codes[start:end], all from one prefix sum.

    sum (c_i + 1) base^(i - start): the same for the same text wherever it is.
    """
    n = len(codes)
    up, down = (_UP, _DOWN) if n <= len(_UP) else (_powers(_BASE, n), _powers(_INVERSE, n))
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum((codes + np.uint64(1)) * up[:n], out=prefix[1:])  # wraps around: the modulo
    return (prefix[ends] - prefix[starts]) * down[starts]


def shingle_hashes(normal: str) -> np.ndarray:
    """The distinct 64-bit hashes of the 3-word shingles of normalized text, all at once."""
    return _Text(normal, folded=True).shingles()


@dataclass(frozen=True, slots=True, eq=False)
class Signature:
    """A MinHash of a text: `size` distinct shingles and the minima of 64 hash permutations.

    uint32 minima are enough to estimate Jaccard to ±0.06 and stay 260 bytes serialized.
    """

    size: int
    mins: np.ndarray  # uint32, PERMUTATIONS long

    def to_bytes(self) -> bytes:
        return np.uint32(self.size).tobytes() + self.mins.astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        if len(data) != 4 * (PERMUTATIONS + 1):
            raise ValueError(f"a signature is {4 * (PERMUTATIONS + 1)} bytes, not {len(data)}: "
                             "stored by another version? recompute it from the text")
        array = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        return cls(int(array[0]), array[1:])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Signature) and self.size == other.size
                and bool(np.array_equal(self.mins, other.mins)))

    __hash__ = None  # type: ignore[assignment]


def signature_of_hashes(hashes: np.ndarray) -> Signature:
    """MinHash by affine permutations modulo 2^32 of the shingle hashes' high halves.

    In 32-bit arithmetic numpy works on twice the lanes of 64-bit multiply-shift; against
    the exact Jaccard of corpus pairs both err as little as 64 true random minima would.
    """
    if not len(hashes):
        return Signature(0, np.full(PERMUTATIONS, _EMPTY, dtype=np.uint32))
    permuted = _A * (hashes >> _SHIFT32).astype(np.uint32)  # wraps around: the modulo
    permuted += _B
    return Signature(len(hashes), permuted.min(axis=1))


def signature(text: str, normalized: bool = False) -> Signature:
    """The near-duplicate signature of `text` (pass `normalized=True` if already normalized)."""
    return signature_of_hashes(shingle_hashes(text if normalized else normalize_text(text)))


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    if not a.size or not b.size:
        return 0.0
    return float(np.count_nonzero(a.mins == b.mins)) / len(a.mins)


def containment(a: Signature, b: Signature) -> float:
    """Estimated share of `a`'s shingles found in `b` (1.0: `a` is a prefix or summary of `b`)."""
    return _containment(similarity(a, b), a.size, b.size)


def _containment(jaccard: float, size_a: int, size_b: int) -> float:
    # |A∩B| = J(|A|+|B|)/(1+J), exact for exact J; capped since J is an estimate.
    if not size_a:
        return 0.0
    return min(1.0, jaccard * (size_a + size_b) / ((1.0 + jaccard) * size_a))


# LSH: 32 bands of 2 minima -> candidates from Jaccard ~0.2 up. Stored (see
# storage.schema.dedupe_bands), so changing it means recomputing the stored bands.
BANDS = 32


def band_keys(sig: Signature) -> np.ndarray:
    """One uint64 key per LSH band: its two minima packed into 64 bits, salted by band.

    The salt makes equal minima in different bands different keys, so one key is a band
    and its bucket together.
    """
    return np.ascontiguousarray(sig.mins).view(np.uint64) ^ _BAND_SALT[:BANDS]


def buckets(signature_bytes: bytes) -> list[int]:
    """The band keys of a stored signature as signed 64-bit ints, as databases keep them."""
    sig = Signature.from_bytes(signature_bytes)
    return band_keys(sig).view(np.int64).tolist() if sig.size else []


# --- Decisions --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a candidate counts as the same story; defaults chosen on bench/dedupe_eval.py.

    A text of fewer than `short_shingles` shingles (about a title and a sentence) needs
    `short_similarity`: two short texts share a lot by chance (a dateline, a name).
    A contained text needs `min_contained` shingles, so a one-line summary is not matched,
    and a Jaccard of `contained_similarity`: a small text against a long one turns a few
    chance matches of minima into a high containment estimate.
    """

    similarity: float = 0.5
    containment: float = 0.8
    short_shingles: int = 30
    short_similarity: float = 0.85
    min_contained: int = 40
    contained_similarity: float = 0.15  # containment is estimated from Jaccard: a floor

    def accepts(self, jaccard: float, contained: float, size_a: int, size_b: int) -> bool:
        small = min(size_a, size_b)
        if small < self.short_shingles:
            return jaccard >= self.short_similarity
        return jaccard >= self.similarity or (
            contained >= self.containment and small >= self.min_contained
            and jaccard >= self.contained_similarity)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why an article is, or is not, a duplicate: of which id, by which layer, how close."""

    duplicate_of: str | None = None
    layer: str | None = None  # "url", "text", "near" or None
    similarity: float = 0.0
    containment: float = 0.0  # the larger of the two directions


@dataclass
class NearDuplicateIndex:
    """The signatures of the window's articles, with LSH bands to find candidates quickly.

    Memory is bounded by `window` (and `max_articles`, oldest out first). Signatures live in
    one uint32 matrix. The band keys of all articles sit in one sorted uint64 array with
    their slots (12 bytes a band, where a dict costs ~80), found with `searchsorted`;
    the newest articles' keys wait in a small dict until `merge_every` of them, or a
    sixteenth of the index if more, are merged in: each merge copies the whole array, so
    merging at a share of it keeps the copying per article constant however many there are.
    A removed article's slot is reused only after a merge has purged its keys.
    Rebuilding with `from_signatures` from stored bytes gives the same answers.
    """

    window: timedelta = timedelta(days=14)
    thresholds: Thresholds = field(default_factory=Thresholds)
    max_articles: int = 1_000_000
    merge_every: int = 1024
    _ids: list[str | None] = field(default_factory=list, repr=False)
    _slots: dict[str, int] = field(default_factory=dict, repr=False)
    _free: list[int] = field(default_factory=list, repr=False)
    _dead: list[int] = field(default_factory=list, repr=False)
    _mins: np.ndarray = field(
        default_factory=lambda: np.empty((0, PERMUTATIONS), np.uint32), repr=False)
    _sizes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32), repr=False)
    _published: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64), repr=False)
    _keys_sorted: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64), repr=False)
    _key_slots: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32), repr=False)
    _pending: dict[int, int | list[int]] = field(default_factory=dict, repr=False)
    _pending_keys: list[np.ndarray] = field(default_factory=list, repr=False)
    _pending_slots: list[int] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, article_id: str) -> bool:
        return article_id in self._slots

    @classmethod
    def from_signatures(cls, rows: Iterable[tuple[str, datetime, bytes]],
                        **options) -> NearDuplicateIndex:
        """The index rebuilt from stored (id, published, signature bytes), oldest first."""
        index = cls(**options)
        for article_id, published, data in sorted(rows, key=lambda row: (row[1], row[0])):
            index.add(article_id, published, Signature.from_bytes(data))
        index.merge()
        return index

    def add(self, article_id: str, published: datetime, sig: Signature) -> None:
        """Index `sig` as `article_id`; an id already there is replaced (an edit, not a copy)."""
        if article_id in self._slots:
            self.remove(article_id)
        if not sig.size:
            return
        if len(self._slots) >= self.max_articles:
            self.remove(self._ids[int(np.argmin(self._published[:len(self._ids)]))] or "")
        slot = self._free.pop() if self._free else self._grow()
        self._ids[slot] = article_id
        self._slots[article_id] = slot
        self._mins[slot] = sig.mins
        self._sizes[slot] = sig.size
        self._published[slot] = published.timestamp()
        keys = band_keys(sig)
        pending = self._pending
        for key in keys.tolist():
            held = pending.get(key)
            if held is None:
                pending[key] = slot
            elif isinstance(held, list):
                held.append(slot)
            else:
                pending[key] = [held, slot]
        self._pending_keys.append(keys)
        self._pending_slots.append(slot)
        if len(self._pending_slots) >= max(self.merge_every, len(self._slots) // 16):
            self.merge()

    def _grow(self) -> int:
        slot = len(self._ids)
        if slot >= len(self._sizes):
            capacity = max(1024, 2 * len(self._sizes))
            self._mins = np.resize(self._mins, (capacity, PERMUTATIONS))
            self._sizes = np.resize(self._sizes, capacity)
            self._published = np.resize(self._published, capacity)
        self._ids.append(None)
        return slot

    def merge(self) -> None:
        """Move the pending keys into the sorted arrays and purge removed articles' keys."""
        alive = np.isfinite(self._published[:len(self._ids)])  # a removed one's is inf
        keys, slots = self._keys_sorted, self._key_slots
        if self._dead:
            keep = alive[slots]
            keys, slots = keys[keep], slots[keep]
        if self._pending_keys:
            add_keys = np.concatenate(self._pending_keys)
            add_slots = np.repeat(np.array(self._pending_slots, dtype=np.int32),
                                  [len(k) for k in self._pending_keys])
            keep = alive[add_slots]
            add_keys, add_slots = add_keys[keep], add_slots[keep]
            order = np.argsort(add_keys)  # equal keys: slots in any order
            add_keys, add_slots = add_keys[order], add_slots[order]
            where = np.searchsorted(keys, add_keys, side="right")
            keys, slots = np.insert(keys, where, add_keys), np.insert(slots, where, add_slots)
        self._keys_sorted, self._key_slots = keys, slots
        self._pending, self._pending_keys, self._pending_slots = {}, [], []
        self._free.extend(self._dead)
        self._dead = []

    def remove(self, article_id: str) -> bool:
        """Forget `article_id`; False if it was not indexed."""
        slot = self._slots.pop(article_id, None)
        if slot is None:
            return False
        self._ids[slot] = None
        self._published[slot] = np.inf
        self._dead.append(slot)
        return True

    def expire(self, now: datetime) -> int:
        """Drop every article published before `now - window`; how many went."""
        cutoff = (now - self.window).timestamp()
        old = np.flatnonzero(self._published[:len(self._ids)] < cutoff)
        for slot in old.tolist():
            self.remove(self._ids[slot] or "")
        if len(old):
            self.merge()
        return len(old)

    def _candidate_slots(self, sig: Signature) -> list[int]:
        """Live slots sharing a band with `sig`, earliest published (then id) first."""
        keys = band_keys(sig)
        found: set[int] = set()
        merged = self._keys_sorted
        if len(merged):
            left = merged.searchsorted(keys)
            for band in np.flatnonzero(merged.take(left, mode="clip") == keys).tolist():
                end = merged.searchsorted(keys[band], side="right")  # only for hits: rare
                found.update(self._key_slots[left[band]:end].tolist())
        pending = self._pending
        for key in filter(pending.__contains__, keys.tolist()):
            held = pending[key]
            found.update(held if isinstance(held, list) else (held,))
        ids, published = self._ids, self._published
        return sorted((s for s in found if ids[s] is not None),
                      key=lambda s: (published[s], ids[s]))

    def candidates(self, sig: Signature) -> list[str]:
        """Ids sharing at least one LSH band with `sig` (unverified), oldest first."""
        return [self._ids[s] or "" for s in self._candidate_slots(sig)] if sig.size else []

    def best_match(self, sig: Signature, exclude: str | None = None) -> Verdict:
        """The verified candidate closest to `sig`, the earliest published on a tie."""
        slots = self._candidate_slots(sig) if sig.size else []
        if exclude is not None and exclude in self._slots:
            slots = [s for s in slots if s != self._slots[exclude]]
        if not slots:
            return Verdict()
        rows = np.array(slots)
        jaccard = np.count_nonzero(self._mins[rows] == sig.mins, axis=1) / PERMUTATIONS
        sizes = self._sizes[rows].astype(np.float64)
        common = jaccard * (sig.size + sizes) / (1.0 + jaccard)
        contained = np.minimum(1.0, np.maximum(common / sig.size, common / sizes))
        best, best_score = None, -1.0
        for i in np.flatnonzero(jaccard > 0).tolist():  # oldest first: strict > keeps it
            j, c = float(jaccard[i]), float(contained[i])
            if max(j, c) > best_score and self.thresholds.accepts(j, c, sig.size, int(sizes[i])):
                best, best_score = (j, c, slots[i]), max(j, c)
        if best is None:
            return Verdict()
        return Verdict(self._ids[best[2]], "near", best[0], best[1])


@dataclass(frozen=True, slots=True)
class Prepared:
    """What dedupe needs of an article, computed once: the keys the caller also stores."""

    url: str  # canonical, "" without one
    fingerprint: str  # "" for an empty text
    signature: Signature


def prepare(url: str | None, text: str) -> Prepared:
    """The canonical URL, the exact fingerprint and the signature of one article."""
    folded = _Text(text)
    return Prepared(canonical_url(url) if url else "", _fingerprint(folded.normal()),
                    signature_of_hashes(folded.shingles()))


def decide(
    article: Prepared,
    index: NearDuplicateIndex | None = None,
    urls: Mapping[str, str] | None = None,
    fingerprints: Mapping[str, str] | None = None,
    article_id: str | None = None,
) -> Verdict:
    """Whether an incoming article repeats one already kept, and why; layers cheapest first.

    `urls` maps canonical URL -> id and `fingerprints` maps fingerprint -> id for the
    window (the caller's storage lookups); `article_id` is the incoming article's own id,
    never its own duplicate (an edit by its source is an update). Nothing is added: the
    caller indexes an article it keeps with `index.add(id, published, article.signature)`.
    """
    if article.url and urls is not None:
        found = urls.get(article.url)
        if found is not None and found != article_id:
            return Verdict(found, "url", 1.0, 1.0)
    if article.fingerprint and fingerprints is not None:
        found = fingerprints.get(article.fingerprint)
        if found is not None and found != article_id:
            return Verdict(found, "text", 1.0, 1.0)
    if index is None:
        return Verdict()
    return index.best_match(article.signature, exclude=article_id)


# --- which copy leads a cluster ------------------------------------------------------------

# A copy this many times larger (in shingles) than another leads instead: a full text beats
# its summary.
MORE_COMPLETE = 2.0


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a story, as `leads` compares them."""

    id: str
    published: datetime
    size: int  # shingles in its text


def leads(a: Copy, b: Copy) -> bool:
    """Whether `a` rather than `b` should be the canonical article of their cluster.

    The earliest published copy leads (feeds are polled, and workers store, in any order),
    unless the other is much more complete: a full text beats its summary whatever their
    dates. Equal dates go to the smaller id. The dedupe window and the database both decide
    by this rule, so the same copies get the same leader whichever was stored first, in one
    process or in several.
    """
    if _much_more_complete(a, b) or _much_more_complete(b, a):
        return _much_more_complete(a, b)
    return (a.published, a.id) < (b.published, b.id)


def _much_more_complete(a: Copy, b: Copy) -> bool:
    return a.size >= MORE_COMPLETE * b.size and a.size > b.size


def explain(text_a: str, text_b: str, thresholds: Thresholds | None = None) -> dict:
    """The figures behind a decision on two texts (for `nashra dedupe explain A B`)."""
    thresholds = thresholds or Thresholds()
    a, b = signature(text_a), signature(text_b)
    j = similarity(a, b)
    return {
        "same_text": text_fingerprint(text_a) == text_fingerprint(text_b),
        "shingles": (a.size, b.size),
        "similarity": j,
        "containment": (_containment(j, a.size, b.size), _containment(j, b.size, a.size)),
        "near_duplicate": thresholds.accepts(
            j, max(_containment(j, a.size, b.size), _containment(j, b.size, a.size)),
            a.size, b.size),
    }
