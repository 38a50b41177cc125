"""Ingest benchmark: seed files -> SQLite with `ingest_seeds`, on one CPU core.

    python bench/bench_ingest.py                  # 5,000 seeds, best of 3
    python bench/bench_ingest.py --seeds 500 --repeat 1           # a quick run
    python bench/bench_ingest.py --profile        # + cProfile of both passes

It writes generated seed files (title, paragraphs, subheadings, trailing site chrome; some
with front matter, a UTF-8 BOM or CRLF line ends) to a temporary folder, pins itself to
one CPU, and times `feeds.pipeline.ingest_seeds(settings, storage)` into a fresh SQLite
file: read, clean, detect the language, tag and store every seed. The target is 500
seeds/s. Two same-run baselines show what part of that is irreducible: reading + decoding
the same files, and `feeds.text.detect_language` alone on the same texts. A second pass
over the unchanged folder (nothing to re-parse or store) is timed too.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from corpus import (
    AUTHORS,
    TRAILING_CHROME,
    TextMaker,
    add_common_arguments,
    load_words,
    pin_to_one_core,
)

from feeds.config import load_settings
from feeds.pipeline import ingest_seeds
from feeds.text import detect_language
from storage import Storage

TARGET_SEEDS_PER_SECOND = 500
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SPREAD = timedelta(days=14)


def seed_text(maker: TextMaker, rng: random.Random, index: int, min_words: int,
              max_words: int) -> str:
    """One seed file: [front matter,] title, blank line, paragraphs and subheadings, chrome."""
    lines = []
    if rng.random() < 0.2:  # a fifth carry front matter, as seeds written by a scraper do
        published = NOW - rng.random() * SPREAD
        lines += ["---", f"url: https://news.example.ma/{published:%Y/%m/%d}/{index}",
                  f"published: {published:%Y-%m-%dT%H:%M:%S+00:00}"]
        if rng.random() < 0.5:
            lines.append(f"author: {rng.choice(AUTHORS)}")
        lines.append("---")
    lines += [maker.title(), ""]
    blocks = maker.paragraphs(rng.randint(min_words, max_words))
    for _ in range(rng.randint(1, 3) if len(blocks) > 2 else 0):
        blocks.insert(rng.randint(1, len(blocks) - 1), maker.subheading())
    for block in blocks:
        lines += [block, ""]
    first = rng.randint(0, 2)
    for phrase in TRAILING_CHROME[first:first + rng.randint(2, 4)]:
        lines += [phrase, ""]
    lines.append(TRAILING_CHROME[-1])
    text = ("\r\n" if rng.random() < 0.05 else "\n").join(lines) + "\n"
    return ("\ufeff" if rng.random() < 0.05 else "") + text


def write_seeds(folder: Path, count: int, min_words: int, max_words: int, seed: int) -> int:
    """`count` seed files in `folder`, named like the shipped one; returns the bytes written."""
    rng = random.Random(seed)
    maker = TextMaker(load_words(), rng)
    folder.mkdir(parents=True)
    size = 0
    for i in range(count):
        data = seed_text(maker, rng, i, min_words, max_words).encode("utf-8")
        (folder / f"{i:05d}_{rng.getrandbits(64):016x}.txt").write_bytes(data)
        size += len(data)
    return size


def read_all(folder: Path) -> list[str]:
    """The baseline: list the seeds and read + decode each one, nothing else."""
    return [path.read_bytes().decode("utf-8-sig") for path in sorted(folder.glob("*.txt"))]


def detect_all(texts: list[str]) -> list[str]:
    """The other baseline: only the language detection step, on the same texts."""
    return [detect_language(text) for text in texts]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5_000, help="seed files to generate")
    parser.add_argument("--min-words", type=int, default=300, help="fewest words a seed")
    parser.add_argument("--max-words", type=int, default=600, help="most words a seed")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds (a fresh database each); the best time of each step counts")
    add_common_arguments(parser, "also profile one first and one second pass (cProfile)", top=15)
    args = parser.parse_args(argv)

    pinned = "not pinned" if args.no_pin else pin_to_one_core()
    folder = Path(tempfile.mkdtemp(prefix="nashra-bench-ingest-"))
    try:
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {pinned}; "
              f"files in {folder}")
        start = time.perf_counter()
        size = write_seeds(folder / "seeds", args.seeds, args.min_words, args.max_words,
                           args.seed)
        print(f"generated {args.seeds:,} seed files, {size / 1e6:.1f} MB, "
              f"in {time.perf_counter() - start:.2f}s")
        run(folder, args)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder)


def run(folder: Path, args: argparse.Namespace) -> None:
    count, repeat = args.seeds, args.repeat
    settings = replace(load_settings(), seeds_dir=folder / "seeds",
                       storage_url=f"sqlite:///{folder / 'unused.db'}")

    start = time.perf_counter()  # the first call loads the fastText model
    detect_language("في خطوة تعكس التزام المغرب الراسخ بتعزيز الأمن الإقليمي والدولي")
    startup = time.perf_counter() - start

    texts = read_all(settings.seeds_dir)
    words = sum(len(t.split()) for t in texts) / len(texts)
    databases = iter(range(1_000_000))

    def fresh_storage() -> Storage:
        return Storage(f"sqlite:///{folder / f'ingest-{next(databases)}.db'}")

    # Each round runs everything once, so a slow spell of the machine hits all alike.
    best = dict.fromkeys(("decode", "detect", "first", "second"), float("inf"))
    storage: Storage | None = None
    for _ in range(repeat):
        if storage is not None:
            storage.close()
        storage = fresh_storage()  # created and migrated outside the timing
        steps = {"decode": partial(read_all, settings.seeds_dir),
                 "detect": partial(detect_all, texts),
                 "first": partial(ingest_seeds, settings, storage),
                 "second": partial(ingest_seeds, settings, storage)}
        results = {}
        for name, step in steps.items():
            start = time.perf_counter()
            results[name] = step()
            best[name] = min(best[name], time.perf_counter() - start)
        if results["first"].new != count or results["first"].skipped:
            raise SystemExit(f"unexpected first pass: {results['first']}")
        second_report = results["second"]
        if second_report.unchanged != count or second_report.new or second_report.updated:
            raise SystemExit(f"unexpected second pass: {second_report}")
    decode, detect, first, second = best["decode"], best["detect"], best["first"], best["second"]

    stored = storage.articles(None, count)
    chrome_left = sum(any(p in a.content_html for p in TRAILING_CHROME) for a in stored)
    with_h2 = sum("<h2>" in a.content_html for a in stored)
    languages = {a.language for a in stored}
    counts = storage.topic_counts()
    storage.close()

    rate = count / first
    print(f"\n{count:,} seeds, {words:.0f} words on average; best of {repeat}")
    print(f"  language model load (once a process, not in the figures)  {startup:7.3f}s")
    print(f"  BASELINE read + decode the files        {decode:7.3f}s  "
          f"{count / decode:9,.0f} seeds/s  {1e3 * decode / count:6.3f} ms/seed")
    print(f"  BASELINE detect_language on the texts   {detect:7.3f}s  "
          f"{count / detect:9,.0f} seeds/s  {1e3 * detect / count:6.3f} ms/seed")
    print(f"  ingest_seeds, first pass (fresh DB)     {first:7.3f}s  "
          f"{rate:9,.0f} seeds/s  {1e3 * first / count:6.3f} ms/seed")
    print(f"  ingest_seeds, second pass (unchanged)   {second:7.3f}s  "
          f"{count / second:9,.0f} seeds/s  {1e3 * second / count:6.3f} ms/seed")
    print(f"\n  first pass = {first / decode:.0f}x read+decode, {first / detect:.1f}x "
          f"detect_language; second pass = {second / decode:.1f}x read+decode")
    print(f"  first pass {rate:,.0f} seeds/s on one core; target >= {TARGET_SEEDS_PER_SECOND} "
          f"{'MET' if rate >= TARGET_SEEDS_PER_SECOND else 'NOT MET'}")
    print(f"\n  check: languages {sorted(languages)}, {with_h2:,} with subheadings, "
          f"{chrome_left} with site chrome left; topics "
          + ", ".join(f"{slug} {n:,}" for slug, n in sorted(counts.items())))

    if args.profile:
        storage = fresh_storage()
        for label in ("first pass (fresh DB)", "second pass (unchanged)"):
            profiler = cProfile.Profile()
            profiler.runcall(ingest_seeds, settings, storage)
            print(f"\ncProfile of one ingest_seeds, {label}, top {args.top} by cumulative time:")
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(f"... and top {args.top} by own time:")
            stats.sort_stats("tottime").print_stats(args.top)
        storage.close()


if __name__ == "__main__":
    main()
