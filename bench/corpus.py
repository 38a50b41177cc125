"""Arabic-ish text for the benchmarks, built from the words of the shipped seeds.

Shared by the benchmarks (each puts this folder on sys.path by being run as
`python bench/NAME.py`), with the flags and CPU pinning they have in common. Everything
is drawn from a seeded `random.Random`, so a run with the same flags makes the same corpus.
"""

from __future__ import annotations

import argparse
import os
import random
import string
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

from feeds.clean import is_chrome

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"

# Punctuation stripped from the edges of words taken from the seeds (Arabic and Latin).
_PUNCTUATION = string.punctuation + "“”«»،؛؟…—–"

# Latin acronyms Moroccan Arabic news titles open with ("BCIJ يفكك خلية ..."), which is
# what makes publish add U+200F in front of a title.
ACRONYMS = ("BCIJ", "DGSN", "DGST", "ONU", "FBI", "FMI", "OTAN", "UE", "OCP", "CNSS", "MAP",
            "UNESCO", "CAN", "FIFA", "BAM", "ONCF")

# Site chrome that scrapers leave at the end of an article (see feeds/data/boilerplate.txt).
TRAILING_CHROME = ("اظهر المزيد", "مقالات ذات صلة", "اترك تعليقاً",
                   "لن يتم نشر عنوان بريدك الإلكتروني. الحقول الإلزامية مشار إليها بـ *",
                   "شارك المقال", "زر الذهاب إلى الأعلى")

AUTHORS = ("هيئة التحرير", "مراسل الرباط", "ياسين العلوي", "سناء بنعلي", "وكالة المغرب العربي",
           "عبد الحق الإدريسي", "Fatima Zahra", "حسن الشرقاوي")


def load_words(seeds_dir: Path = SEEDS_DIR) -> list[str]:
    """Every word of the seeds' real text (site chrome lines skipped), repeats kept.

    Keeping repeats keeps the seeds' word frequencies, so common words stay common.
    """
    words: list[str] = []
    for path in sorted(seeds_dir.glob("*.txt")):
        for line in path.read_text("utf-8").splitlines():
            line = line.strip()
            if not line or is_chrome(line):
                continue
            words.extend(w for w in (t.strip(_PUNCTUATION) for t in line.split()) if w)
    if len(set(words)) < 50:
        raise SystemExit(f"too few words in {seeds_dir}/*.txt to build a corpus from")
    return words


class TextMaker:
    """Titles, sentences, paragraphs and subheadings drawn from a word list."""

    def __init__(self, words: list[str], rng: random.Random):
        self.words, self.rng = words, rng

    def phrase(self, count: int) -> str:
        return " ".join(self.rng.choices(self.words, k=count))

    def title(self, acronym_share: float = 0.15, mean_words: int = 10) -> str:
        count = max(4, round(self.rng.gauss(mean_words, 2)))
        if self.rng.random() < acronym_share:
            return f"{self.rng.choice(ACRONYMS)} {self.phrase(count - 1)}"
        return self.phrase(count)

    def subheading(self) -> str:
        """A short line without final punctuation: what seeds turn into an <h2>."""
        return self.phrase(self.rng.randint(2, 6))

    def sentence(self) -> str:
        count = self.rng.randint(8, 22)
        words = self.rng.choices(self.words, k=count)
        if count > 12 and self.rng.random() < 0.6:
            words[self.rng.randint(4, count - 5)] += "،"
        return " ".join(words) + self.rng.choices((".", "؟", ":"), weights=(8, 1, 1))[0]

    def paragraphs(self, total_words: int) -> list[str]:
        """Paragraphs of 2-5 sentences adding up to about `total_words` words."""
        paragraphs, count = [], 0
        while count < total_words:
            sentences = [self.sentence() for _ in range(self.rng.randint(2, 5))]
            paragraphs.append(" ".join(sentences))
            count += sum(len(s.split()) for s in sentences)
        return paragraphs


def pin_to_one_core() -> str:
    """Run on one CPU, so the figures are per core and the other core's load stays away."""
    if hasattr(os, "sched_setaffinity"):
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {0} if 0 in cpus else {min(cpus)})
        return f"pinned to CPU {min(os.sched_getaffinity(0))}"
    return "not pinned (no sched_setaffinity here)"


def add_common_arguments(parser: argparse.ArgumentParser, profile_help: str, top: int) -> None:
    """The flags every single-core benchmark takes."""
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the corpus")
    parser.add_argument("--profile", action="store_true", help=profile_help)
    parser.add_argument("--top", type=int, default=top, help="rows of each profile to print")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")


def rss_feed(number: int, items: list[tuple[str, str, str, datetime, str]]) -> bytes:
    """A generated Arabic RSS 2.0 feed "feed N" of (title, link, guid, published, body)."""
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
        f"<pubDate>{format_datetime(published)}</pubDate><description>{body}</description></item>"
        for title, link, guid, published, body in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>feed {number}</title><link>https://example.org/{number}</link>"
            f"<language>ar</language>{entries}</channel></rss>").encode()
