"""Topic tagging by term lists, matched Arabic-aware (folded text, clitic prefixes)."""

from __future__ import annotations

import re

import ahocorasick

from feeds.clean import plain_text
from feeds.model import Article, Topic
from feeds.text import fold

# Proclitics a word may carry before a term (و/ف, then ب/ك/ل, then ال or the fused لل),
# and the enclitics and inflections it may end with, in folded form (ة -> ه).
ARABIC_PREFIXES = frozenset(
    f + p for f in ("", "و", "ف") for p in ("", "ب", "ك", "ل", "ال", "بال", "كال", "لل")
)
ARABIC_SUFFIXES = frozenset({
    "", "ي", "يه", "يون", "يين", "يات", "ه", "ها", "هم", "هما", "هن", "كم", "كما", "نا",
    "ون", "ين", "ات", "ان", "تان", "تين",
})
TITLE_WEIGHT = 2


def _is_arabic(char: str) -> bool:
    return "\u0621" <= char <= "\u064a"


def term_key(term: str) -> str:
    """The folded core searched for: an Arabic term's own article ال is a clitic like any other."""
    words = fold(term).split()
    if words and _is_arabic(words[0][0]) and words[0].startswith("ال") and len(words[0]) > 4:
        words[0] = words[0][2:]
    return " ".join(words)


class TermMatcher:
    """Finds terms in text with one Aho-Corasick pass (pyahocorasick) and no per-hit checks.

    Every allowed form of a term is in the automaton as a whole word between spaces:
    " " + clitic prefix + term + suffix + " " for Arabic terms (so "والأمن" and "الأمنية"
    match "الأمن" while "فاسد" does not match "فاس"), " " + term + " " for the others. The
    text is folded and its punctuation turned into spaces first, so a hit is a match. Each
    word counts once per label, however many of a label's terms it holds.
    """

    def __init__(self, terms: dict[str, list[str]]):
        labels: dict[str, set[str]] = {}
        for term, term_labels in terms.items():
            key = term_key(term)
            if key:
                labels.setdefault(key, set()).update(term_labels)
        self._automaton = ahocorasick.Automaton()
        forms: dict[str, set[str]] = {}
        for key, key_labels in labels.items():
            affixes = ((p, s) for p in ARABIC_PREFIXES for s in ARABIC_SUFFIXES) if _is_arabic(
                key[-1]) else [("", "")]
            for prefix, suffix in affixes:
                forms.setdefault(f" {prefix}{key}{suffix} ", set()).update(key_labels)
        for form, form_labels in forms.items():
            self._automaton.add_word(form, (len(form), tuple(sorted(form_labels))))
        self._empty = not forms
        if not self._empty:
            self._automaton.make_automaton()

    def matches(self, text: str) -> dict[str, set[int]]:
        """label -> start offsets (in the folded, space-normalized text) of matched words."""
        found: dict[str, set[int]] = {}
        if self._empty:
            return found
        text = " " + " ".join(_WORD.findall(fold(text))) + " "
        for end, (length, labels) in self._automaton.iter(text):
            for label in labels:
                found.setdefault(label, set()).add(end - length)
        return found


_WORD = re.compile(r"[^\W_]+")


class Tagger:
    """Puts an article in every topic whose terms score at least the topic's `min_score`.

    Score: TITLE_WEIGHT per matching word in the title, 1 per matching word in the body.
    """

    def __init__(self, topics: tuple[Topic, ...]):
        self.topics = topics
        terms: dict[str, list[str]] = {}
        for topic in topics:
            for term in topic.terms:
                terms.setdefault(term, []).append(topic.slug)
        self._matcher = TermMatcher(terms)

    def scores(self, article: Article) -> dict[str, int]:
        scores = dict.fromkeys((t.slug for t in self.topics), 0)
        for text, weight in ((article.title, TITLE_WEIGHT), (plain_text(article.content_html), 1)):
            for slug, words in self._matcher.matches(text).items():
                scores[slug] += weight * len(words)
        return scores

    def tag(self, article: Article) -> Article:
        """`article` with its topics: those it named itself plus those its text earns."""
        scores = self.scores(article)
        chosen = tuple(
            t.slug for t in self.topics
            if t.slug in article.topics or scores[t.slug] >= t.min_score
        )
        return article.with_topics(chosen)
