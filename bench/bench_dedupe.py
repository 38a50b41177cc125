"""Deduplication: precision and recall per layer on the labelled set, throughput, memory.

Quality: bench/dedupe_eval.py's pairs. Every real article of the ANT set is in the index
(the background a copy must be told apart from); for each pair, the copy `b` is decided
against it, `a` excluded only when `a` is `b`'s own id. A positive is found when the
verdict names `a`; a negative is wrong when it names `a`.
Speed: 300-word generated Arabic articles through `prepare` + `decide` + `index.add`,
against bare normalization + hashing, one core, in CPU time (and wall time). Stored: the
stage and the save into SQLite (and PostgreSQL with --pg). Memory: tracemalloc over the
index of N articles.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from feeds import dedupe
from feeds.clusters import Deduper
from feeds.dedupe import (
    NearDuplicateIndex,
    Thresholds,
    canonical_url,
    decide,
    normalize_text,
    prepare,
    signature,
    similarity,
    text_fingerprint,
)
from feeds.model import Article, DedupeKeys
from storage import Storage
from storage.schema import article_topics, dedupe_bands, sources, story_keys
from storage.schema import articles as articles_

T0 = datetime(2018, 2, 27, tzinfo=UTC)


def prf(tp: int, fp: int, fn: int) -> str:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return f"P {p:.3f}  R {r:.3f}  F1 {f:.3f}  (tp {tp}, fp {fp}, fn {fn})"


def quality(thresholds: Thresholds, verbose: bool = False) -> None:
    import dedupe_eval

    reason = dedupe_eval.corpus_missing()
    if reason:
        print(f"quality: skipped, {reason}")
        return
    docs, pairs, notes = dedupe_eval.build()
    index = NearDuplicateIndex(window=timedelta(days=30), thresholds=thresholds)
    sigs = {}
    for i, doc in enumerate(docs):
        sigs[doc.id] = signature(doc.text)
        index.add(doc.id, T0 + timedelta(seconds=i), sigs[doc.id])
    urls = {canonical_url(d.url): d.id for d in docs if d.url}
    prints = {text_fingerprint(d.text): d.id for d in docs}
    by_id = {d.id: d for d in docs}

    def is_copy(x: str, y: str) -> bool:
        """The corpus holds copies (agency text, re-crawls): naming one of them is right."""
        return x in by_id and y in by_id and x != y and \
            dedupe_eval.exact_containment(by_id[x].text, by_id[y].text) >= 0.8

    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # right, total
    for pair in pairs:
        a, b = pair.a, pair.b
        if pair.layer == "url":
            hit = canonical_url(a.url) == canonical_url(b.url)
        elif pair.layer == "text":
            hit = text_fingerprint(a.text) == text_fingerprint(b.text)
        elif a.id not in index:  # generated French/English: a small index of its own
            local = NearDuplicateIndex(thresholds=thresholds)
            local.add(a.id, T0, signature(a.text))
            hit = local.best_match(signature(b.text), exclude=b.id).duplicate_of == a.id
        verdict = decide(prepare(b.url, b.text), index, urls, prints, article_id=b.id)
        named = verdict.duplicate_of
        if pair.layer == "near" and a.id in index:
            named = index.best_match(signature(b.text), exclude=b.id).duplicate_of
            hit = named == a.id or (named is not None and is_copy(named, a.id))
        overall = (verdict.duplicate_of == a.id or (a.id not in index and hit)
                   or (verdict.duplicate_of is not None and is_copy(verdict.duplicate_of, a.id)))
        for name, got in ((pair.layer, hit), ("overall", overall)):
            c = counts[name]
            if got and pair.duplicate:
                c[0] += 1
            elif got:
                c[1] += 1
            elif pair.duplicate:
                c[2] += 1
        k = kinds[f"{'+' if pair.duplicate else '-'} {pair.kind}"]
        k[0] += hit == pair.duplicate
        k[1] += 1
        if verbose and hit != pair.duplicate:
            print("  wrong:", pair.kind, a.id, b.id, dedupe.explain(a.text, b.text))
    print(f"evaluation set: {len(pairs)} pairs over {len(docs)} real articles; "
          f"{notes['unlabelled_possible_copies']} possible agency copies left unlabelled")
    for name in ("url", "text", "near", "overall"):
        print(f"  {name:8} {prf(*counts[name])}")
    print("  by kind (right/total):", ", ".join(f"{k} {r}/{t}" for k, (r, t) in
                                                 sorted(kinds.items())))
    estimate_error([(p.a.text, p.b.text) for p in pairs if p.layer == "near"])


def estimate_error(pairs: list[tuple[str, str]]) -> None:
    """How far `similarity` is from the shingle sets' exact Jaccard.

    Beside the binomial error of 64 truly random minima: what the hashing must not worsen.
    """
    exact, estimated = [], []
    for a, b in pairs:
        sa, sb = (dedupe.shingle_hashes(normalize_text(t)) for t in (a, b))
        if len(sa) and len(sb):
            exact.append(len(np.intersect1d(sa, sb)) / len(np.union1d(sa, sb)))
            estimated.append(similarity(signature(a), signature(b)))
    j, e = np.array(exact), np.array(estimated)
    print(f"  similarity vs exact Jaccard ({len(j)} near pairs): bias {np.mean(e - j):+.4f}, "
          f"RMSE {np.sqrt(np.mean((e - j) ** 2)):.4f} "
          f"(64 random minima: {np.sqrt(np.mean(j * (1 - j) / dedupe.PERMUTATIONS)):.4f})")


def articles(count: int, words: int, seed: int) -> list[str]:
    """300-word Arabic texts from the shipped seed's vocabulary (bench/corpus.py's words)."""
    rng = random.Random(seed)
    seed_dir = Path(__file__).resolve().parents[1] / "seeds"
    vocab = [w for p in seed_dir.glob("*.txt") for w in p.read_text("utf-8").split()]
    vocab = [w for w in vocab if any("\u0600" <= c <= "\u06ff" for c in w)] or ["كلمة"]
    return [" ".join(rng.choices(vocab, k=words)) for _ in range(count)]


def _paragraphs(text: str, size: int = 60) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + size]) for i in range(0, len(words), size)]


def best_rate(count: int, run, repeat: int) -> tuple[float, float]:
    """Articles per second of this process's CPU time and of wall time, best of `repeat`.

    CPU time is the per-core figure on a machine shared with other work; wall time shows
    how much of the core the run had.
    """
    cpu = wall = float("inf")
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        run()
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return count / cpu, count / wall


def throughput(count: int, words: int, seed: int, repeat: int) -> None:
    texts = articles(count, words, seed)

    def bare() -> None:
        for text in texts:
            dedupe.signature_of_hashes(dedupe.shingle_hashes(normalize_text(text)))

    def whole() -> None:
        index = NearDuplicateIndex()
        urls: dict[str, str] = {}
        prints: dict[str, str] = {}
        for i, text in enumerate(texts):
            published = T0 + timedelta(seconds=60 * i)
            url = f"https://www.example.com/news/{i}?utm_source=rss"
            article = prepare(url, text)
            verdict = decide(article, index, urls, prints)
            if verdict.duplicate_of is None:
                index.add(str(i), published, article.signature)
                urls[article.url] = str(i)
                prints[article.fingerprint] = str(i)

    stored = [Article(source="bench", key=str(i), title=f"خبر {i}", summary="",
                      content_html="".join(f"<p>{p}</p>" for p in _paragraphs(text)),
                      language="ar", published=T0 + timedelta(seconds=60 * i),
                      updated=T0 + timedelta(seconds=60 * i),
                      url=f"https://www.example.com/news/{i}?utm_source=rss")
              for i, text in enumerate(texts)]

    def stage() -> None:  # as feeds.pipeline.store runs it, from stored XHTML bodies
        deduper = Deduper()
        for start in range(0, len(stored), 200):
            deduper.assign(stored[start:start + 200], {})

    print(f"throughput, {count} articles of {words} words, one core, best of {repeat}, "
          "articles/s of CPU time (of wall time):")
    for label, run in (("BASELINE normalize + shingle hashes + MinHash", bare),
                       ("decide (url, text, near) + add", whole),
                       ("the stage: Deduper.assign, batches of 200", stage)):
        cpu, wall = best_rate(count, run, repeat)
        print(f"  {label + ':':47} {cpu:,.0f} ({wall:,.0f})")
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        return
    sample = texts[: min(count, 3000)]

    def datasketch() -> None:
        lsh = MinHashLSH(threshold=0.8, num_perm=128)
        for i, text in enumerate(sample):
            words_ = normalize_text(text).split()
            m = MinHash(num_perm=128)
            m.update_batch([" ".join(words_[j:j + 3]).encode() for j in range(len(words_) - 2)])
            lsh.query(m)
            lsh.insert(str(i), m)

    cpu, wall = best_rate(len(sample), datasketch, 1)
    print(f"  {'datasketch defaults (128 perms, LSH 0.8):':47} {cpu:,.0f} ({wall:,.0f})")


def stored(count: int, words: int, seed: int, repeat: int, pg_url: str | None) -> None:
    """The stage and the save together, as the pipeline runs them, into a fresh database:
    SQLite (the window in memory), and PostgreSQL when given (the window and its LSH bands
    in the database). Wall time: the database's work counts."""
    texts = articles(count, words, seed + 2)
    now = datetime.now(UTC)
    batch = [Article(source="bench", key=str(i), title=f"خبر {i}", summary="",
                     content_html="".join(f"<p>{p}</p>" for p in _paragraphs(text)),
                     language="ar", published=now - timedelta(seconds=i),
                     updated=now - timedelta(seconds=i), url=f"https://example.com/news/{i}")
             for i, text in enumerate(texts)]
    # every tenth a near copy of an earlier one: a new title and its first 80% of words
    batch = [replace(a, url=None, title=f"نسخة {a.title}",
                     content_html=f"<p>{' '.join(texts[i - 5].split()[:words * 4 // 5])}</p>")
             if i % 10 == 9 else a for i, a in enumerate(batch)]

    def run(url: str) -> float:
        best = float("inf")
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as folder:
                storage = Storage(url.format(folder=folder))
                deduper = Deduper(storage=storage) if storage.shared else Deduper()
                start = time.perf_counter()
                for first in range(0, len(batch), 200):
                    part = deduper.assign(batch[first:first + 200], {})
                    storage.save_articles(part, kind="feed", near=deduper.recheck)
                best = min(best, time.perf_counter() - start)
                with storage.engine.begin() as conn:  # a PostgreSQL database is reused
                    for table in (article_topics, dedupe_bands, story_keys, articles_, sources):
                        conn.execute(table.delete())
                storage.close()
        return count / best

    print(f"stage + save, {count} articles in batches of 200 (a tenth near copies), "
          f"best of {repeat}, articles/s of wall time:")
    runs = [("SQLite, window in memory", "sqlite:///{folder}/bench.db")]
    if pg_url:
        runs.append(("PostgreSQL, window in the database", pg_url))
    for label, url in runs:
        print(f"  {label + ':':47} {run(url):,.0f}")


def memory(count: int, words: int, seed: int) -> None:
    texts = articles(count, words, seed + 1)
    sigs = [signature(t) for t in texts]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = NearDuplicateIndex()
    for i, sig in enumerate(sigs):
        index.add(f"{i:08d}-0000-0000-0000-000000000000", T0 + timedelta(seconds=i), sig)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"memory, {count} articles in the window: {(after - before) / count:,.0f} bytes/article "
          f"(index with 36-char ids), signature {len(sigs[0].to_bytes())} bytes serialized")
    stored = [s.to_bytes() for s in sigs]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    window = Deduper()  # what the pipeline keeps: the index, URLs, fingerprints, clusters
    for i, data in enumerate(stored):
        keys = DedupeKeys(f"https://example.com/news/2018/02/{i:08d}", f"{i:032x}", data)
        window.remember(f"{i:08d}-0000-0000-0000-000000000000", T0 + timedelta(seconds=i), keys)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  the whole window (Deduper: index, URL and fingerprint maps, clusters): "
          f"{(after - before) / count:,.0f} bytes/article")
    start = time.perf_counter()
    rows = [(f"{i}", T0 + timedelta(seconds=i), s.to_bytes()) for i, s in enumerate(sigs)]
    rebuilt = NearDuplicateIndex.from_signatures(rows)
    print(f"  rebuild from {len(rebuilt):,} stored signatures: "
          f"{time.perf_counter() - start:.2f} s")
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        return
    n = min(count, 5000)
    ms = []
    for text in texts[:n]:
        words_ = normalize_text(text).split()
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(words_[j:j + 3]).encode() for j in range(len(words_) - 2)])
        ms.append(m)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, m in enumerate(ms):
        lsh.insert(f"{i:08d}-0000-0000-0000-000000000000", m)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  datasketch defaults, LSH only ({n} articles): {(after - before) / n:,.0f} "
          "bytes/article (plus the MinHash objects)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print the misjudged pairs")
    parser.add_argument("--only", choices=("quality", "speed", "stored", "memory"))
    parser.add_argument("--pg", metavar="URL", help="also time the stored stage on PostgreSQL "
                        "(its articles are deleted after each run)")
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    if args.only in (None, "quality"):
        quality(Thresholds(), args.verbose)
    if args.only in (None, "speed"):
        throughput(min(args.articles, 10000), args.words, args.seed, args.repeat)
    if args.only in (None, "stored"):
        stored(min(args.articles, 5000), args.words, args.seed, args.repeat, args.pg)
    if args.only in (None, "memory"):
        memory(args.articles, args.words, args.seed)


if __name__ == "__main__":
    main()
