"""Topic tagging by term lists, matched Arabic-aware (folded text, clitic prefixes)."""

from __future__ import annotations

import re

from feeds.clean import plain_text
from feeds.model import Article, Topic
from feeds.text import fold

# Proclitics a word may carry: و/ف, then ب/ك/ل, then the article ال (or the fused لل).
_ARABIC_PREFIX = r"(?:[وف]?(?:[بكل]?ال|لل|[بكل])?)"
# Enclitics and inflections a word may end with, in folded form (ة -> ه): -ي -ية -ون -ين
# -ات -ان -ه -ها -هم -كم -نا ... Anything else after the term means another word.
_ARABIC_SUFFIX = r"(?:ي(?:ه|ون|ين|ات)?|ه|ها|هم|هما|هن|كم|كما|نا|ون|ين|ات|ان|تان|تين)?"
_ARABIC_LETTER = re.compile(r"[\u0621-\u064a]")

TITLE_WEIGHT = 2


def _word_pattern(word: str) -> str:
    if not _ARABIC_LETTER.match(word):
        return re.escape(word)
    if word.startswith("ال") and len(word) > 4:
        word = word[2:]
    return _ARABIC_PREFIX + re.escape(word) + _ARABIC_SUFFIX


def term_pattern(term: str) -> str:
    """A regex for `term` and its clitic and suffixed forms, never inside another word."""
    words = fold(term).split()
    return r"(?<!\w)" + r"\s+".join(_word_pattern(w) for w in words) + r"(?!\w)"


class Tagger:
    """Puts an article in every topic whose terms score at least the topic's `min_score`.

    Score: TITLE_WEIGHT per match in the title, 1 per match in the body.
    """

    def __init__(self, topics: tuple[Topic, ...]):
        self.topics = topics
        self._patterns = {
            t.slug: re.compile("|".join(term_pattern(term) for term in t.terms)) for t in topics
        }

    def scores(self, article: Article) -> dict[str, int]:
        title, body = fold(article.title), fold(plain_text(article.content_html))
        return {
            slug: TITLE_WEIGHT * len(pattern.findall(title)) + len(pattern.findall(body))
            for slug, pattern in self._patterns.items()
        }

    def tag(self, article: Article) -> Article:
        """`article` with its topics: those it named itself plus those its text earns."""
        scores = self.scores(article)
        chosen = tuple(
            t.slug for t in self.topics
            if t.slug in article.topics or scores[t.slug] >= t.min_score
        )
        return article.with_topics(chosen)
