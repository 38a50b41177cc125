"""Imported once by the forkserver of the parsing processes (feeds.polling.FeedReader), so
what each of them would otherwise build on its first feed is built once and shared: the
folding tables of text and dedupe, CLDR's places and the gazetteer with its aliases'
clitic forms (most of a tagger's), fastText's model. That was ~0.13 s of CPU a process,
each time `nashra ingest` starts its parsing processes."""

from feeds import polling  # noqa: F401  (what the parsing processes run)
from feeds.dedupe import normalize_text
from feeds.tagging import Tagger
from feeds.text import detect_language

normalize_text("نشرة")  # builds text's fold table, then dedupe's table on it
Tagger(topics=())  # the gazetteer, and its aliases' forms (feeds.tagging.forms)
detect_language("نشرة الأخبار")
