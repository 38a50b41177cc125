"""One TOML file -> validated `Settings`, with errors that name the key and the fix."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from feeds.model import EntityRef, Rule, Source, Topic
from feeds.text import canonical_language

DEFAULT_CONFIG_NAME = "default.toml"
ADMIN_TOKEN_ENV = "NASHRA_ADMIN_TOKEN"
MODEL_FILE = "nashra-model.joblib"  # beside the config file
DECIDE = ("rule", "model", "both")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_MISSING = object()


class ConfigError(Exception):
    """A user-fixable problem in the configuration file."""


@dataclass(frozen=True)
class FetchSettings:
    """How feed sources are polled: politeness, caps and the bounds of adaptive intervals."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 10_000_000
    concurrency: int = 8
    processes: int | None = None  # parsing processes; None: one per core, up to 4
    min_interval: int = 900
    max_interval: int = 86400
    max_backoff: int = 86400


@dataclass(frozen=True)
class DedupeSettings:
    """How duplicates are found: the window kept in memory and the near-duplicate bars.

    The defaults were chosen on bench/dedupe_eval.py (precision 1.000, recall 0.995).
    """

    window_days: int = 14
    similarity: float = 0.5  # estimated Jaccard of 3-word shingles for a rewrite
    containment: float = 0.8  # share of the smaller text found in the larger one


@dataclass(frozen=True)
class Decision:
    """How the trained model decides a topic: `decide` is "model" (its verdict alone) or
    "both" (the rule's, or the model's), by its probability for `label` >= `threshold`."""

    decide: str
    label: str
    threshold: float

    def deciders(self, probability: float, by_rule: bool) -> tuple[str, ...]:
        """What tags the topic, given the model's `probability` and whether its rule tagged
        it: "rule" and/or "model", or nothing (not tagged). One place for the verdict, so
        `nashra tag explain` says what tagging does."""
        model = ("model",) if probability >= self.threshold else ()
        return (("rule",) if by_rule and self.decide == "both" else ()) + model


@dataclass(frozen=True)
class WorkerSettings:
    """Distributed ingest (`nashra run --role scheduler|worker`): the Celery broker and timing."""

    broker_url: str | None = None  # redis://... or amqp://...; None: one process only
    queue: str = "nashra"  # installations sharing a broker need one each
    # An unacknowledged task goes to another worker after this long (Redis; RabbitMQ
    # redelivers as soon as the worker's connection drops), and a source queued this long
    # ago and still due is queued again: what a dead worker costs at most.
    visibility_timeout: int = 300
    rebuild_delay: int = 5  # seconds from a topic's first change to its rebuild: later ones join it


@dataclass(frozen=True)
class Settings:
    """Everything Nashra reads from its configuration file."""

    source: str
    site_titles: dict[str, str]
    site_descriptions: dict[str, str]
    language: str
    base_url: str
    storage_url: str
    seeds_dir: Path
    scan_interval: int
    max_seed_bytes: int
    batch_size: int
    items_per_feed: int
    host: str
    port: int
    topics: tuple[Topic, ...]
    sources: tuple[Source, ...] = ()
    fetch: FetchSettings = field(default_factory=lambda: FetchSettings())
    dedupe: DedupeSettings = field(default_factory=lambda: DedupeSettings())
    workers: WorkerSettings = field(default_factory=lambda: WorkerSettings())
    admin_token: str | None = None  # for /status when the server is bound beyond loopback
    access_log: bool = False
    server_workers: int = 1  # server processes; each holds its own documents, partners and counts
    websub_hub: str | None = None  # told of every changed topic feed
    model_path: Path = Path(MODEL_FILE)  # the trained classifier (`nashra train`)
    decisions: dict[str, Decision] = field(default_factory=dict)  # topics not by rule alone

    @property
    def site_title(self) -> str:
        return self.site_titles.get(self.language) or next(iter(self.site_titles.values()))

    @property
    def site_description(self) -> str:
        titles = self.site_descriptions
        return titles.get(self.language) or next(iter(titles.values()))

    def topic(self, slug: str) -> Topic | None:
        return next((t for t in self.topics if t.slug == slug), None)

    def with_server(self, host: str | None, port: int | None, workers: int | None = None
                    ) -> Settings:
        """These settings served at another address; a derived base URL follows it."""
        host, port = host or self.host, port or self.port
        base_url = self.base_url
        if base_url == f"http://{self.host}:{self.port}":
            base_url = f"http://{host}:{port}"
        return replace(self, host=host, port=port, base_url=base_url,
                       server_workers=workers or self.server_workers)


class _Table:
    """A TOML table that knows its dotted path, for error messages."""

    def __init__(self, data: dict, where: str, file: str):
        self.data, self.where, self.file = data, where, file

    def error(self, key: str, problem: str) -> ConfigError:
        name = f"{self.where}.{key}" if self.where else key
        return ConfigError(f"{self.file}: {name}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "is required but missing; add it")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.error(key, f"must be {_TOML_NAMES.get(names, names)}, not {value!r}")
        return value

    def positive(self, key: str, default: int) -> int:
        value = self.get(key, int, default)
        if value <= 0:
            raise self.error(key, f"must be a positive whole number, not {value}")
        return value

    def table(self, key: str) -> _Table:
        where = f"{self.where}.{key}" if self.where else key
        return _Table(self.get(key, dict, {}), where, self.file)

    def texts(self, key: str, default: Any = _MISSING) -> dict[str, str]:
        """A per-language text: a table {ar = "...", en = "..."} or one plain string."""
        value = self.get(key, (dict, str), default)
        if isinstance(value, str):
            value = {"": value}
        if not value or not all(isinstance(v, str) and v.strip() for v in value.values()):
            raise self.error(key, 'must be non-empty text, e.g. {ar = "...", en = "..."}')
        return {canonical_language(k) if k else "": v.strip() for k, v in value.items()}


_TOML_NAMES = {"str": "a string", "int": "a whole number", "dict": "a table",
               "bool": "true or false", "int or float": "a number",
               "list": "an array", "dict or str": "a table or a string"}


def default_config_text() -> str:
    return resources.files("feeds").joinpath(DEFAULT_CONFIG_NAME).read_text("utf-8")


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from `path`, or from the shipped default configuration when it is None."""
    if path is None:
        return parse_settings(default_config_text(), "default config")
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; check --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return parse_settings(text, str(path))


def parse_settings(text: str, file: str) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    root = _Table(data, "", file)
    site, storage, seeds = root.table("site"), root.table("storage"), root.table("seeds")
    publish, server = root.table("publish"), root.table("server")
    language = canonical_language(site.get("language", str, "ar"))
    fetch = _fetch_settings(root.table("fetch"))
    host, port = server.get("host", str, "127.0.0.1"), server.positive("port", 8080)
    return Settings(
        source=file,
        site_titles=_with_language(site.texts("title", {"ar": "نشرة"}), language),
        site_descriptions=_with_language(
            site.texts("description", {"ar": "نشرة: أخبار حسب الموضوع"}), language
        ),
        language=language,
        base_url=site.get("base_url", str, f"http://{host}:{port}").rstrip("/"),
        storage_url=storage.get("url", str, "sqlite:///var/nashra.db"),
        seeds_dir=Path(seeds.get("dir", str, "seeds")),
        scan_interval=seeds.positive("scan_interval", 60),
        max_seed_bytes=seeds.positive("max_bytes", 2_000_000),
        batch_size=seeds.positive("batch_size", 200),
        items_per_feed=publish.positive("items_per_feed", 50),
        host=host,
        port=port,
        topics=(topics := _topics(root, language)),
        model_path=_model_path(root.table("model"), file),
        decisions=_decisions(root),
        sources=_sources(root, fetch, {t.slug for t in topics}),
        fetch=fetch,
        dedupe=_dedupe_settings(root.table("dedupe")),
        workers=_worker_settings(root.table("workers")),
        admin_token=os.environ.get(ADMIN_TOKEN_ENV) or server.get("admin_token", str, None),
        access_log=server.get("access_log", bool, False),
        server_workers=server.positive("workers", 1),
        websub_hub=_websub_hub(root.table("websub")),
    )


def _model_path(table: _Table, file: str) -> Path:
    """[model] path, relative to the config's folder; by default beside the config (in the
    current folder for the shipped one)."""
    folder = Path(file).parent if file != "default config" else Path()
    return folder / table.get("path", str, MODEL_FILE)


def _decisions(root: _Table) -> dict[str, Decision]:
    """slug -> Decision of each topic with decide = "model" or "both"."""
    decisions = {}
    for index, entry in enumerate(root.get("topics", list, [])):
        table = _Table(entry, f"topics[{index}]", root.file)
        decide = table.get("decide", str, "rule")
        if decide not in DECIDE:
            raise table.error("decide", f"{decide!r} must be one of {', '.join(DECIDE)}")
        threshold = table.get("threshold", (int, float), 0.5)
        if not 0 < threshold < 1:
            raise table.error("threshold", f"must be a probability between 0 and 1, not "
                                           f"{threshold}")
        if decide != "rule":
            decisions[entry["slug"]] = Decision(decide, table.get("label", str, entry["slug"]),
                                                float(threshold))
    return decisions


def _websub_hub(table: _Table) -> str | None:
    hub = table.get("hub", str, None)
    if hub is not None and not hub.startswith(("http://", "https://")):
        raise table.error("hub", f"{hub!r} must be an http:// or https:// URL")
    return hub


_BROKER_SCHEMES = ("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")


def _worker_settings(table: _Table) -> WorkerSettings:
    defaults = WorkerSettings()
    broker = table.get("broker_url", str, None)
    if broker is not None and not broker.startswith(_BROKER_SCHEMES):
        raise table.error("broker_url", f"{broker!r} must be a Redis or RabbitMQ URL, e.g. "
                                        "redis://127.0.0.1:6379/0 or amqp://guest:guest@host//")
    return WorkerSettings(
        broker_url=broker,
        queue=table.get("queue", str, defaults.queue),
        visibility_timeout=table.positive("visibility_timeout", defaults.visibility_timeout),
        rebuild_delay=table.positive("rebuild_delay", defaults.rebuild_delay))


def _dedupe_settings(table: _Table) -> DedupeSettings:
    defaults = DedupeSettings()
    values = {"window_days": table.positive("window_days", defaults.window_days)}
    for name in ("similarity", "containment"):
        value = table.get(name, (int, float), getattr(defaults, name))
        if not 0 < value <= 1:
            raise table.error(name, f"must be a share between 0 and 1, not {value}")
        values[name] = float(value)
    return DedupeSettings(**values)


def _fetch_settings(table: _Table) -> FetchSettings:
    defaults = FetchSettings()
    values = {name: table.get(name, (int, float), getattr(defaults, name))
              for name in ("connect_timeout", "read_timeout")}
    for name in ("max_bytes", "concurrency", "min_interval", "max_interval", "max_backoff"):
        values[name] = table.positive(name, getattr(defaults, name))
    for name in ("connect_timeout", "read_timeout"):
        if values[name] <= 0:
            raise table.error(name, f"must be a positive number of seconds, not {values[name]}")
    if values["min_interval"] > values["max_interval"]:
        raise table.error("min_interval", "must not be larger than max_interval")
    values["processes"] = _processes(table)
    return FetchSettings(**values)


def _processes(table: _Table) -> int | None:
    value = table.get("processes", (int, str), "auto")
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise table.error("processes", f'must be "auto" or a whole number (0: parse in the '
                                       f"polling threads), not {value!r}")
    return value


def _sources(root: _Table, fetch: FetchSettings, topics: set[str]) -> tuple[Source, ...]:
    found: dict[str, Source] = {}
    for index, entry in enumerate(root.get("sources", list, [])):
        if not isinstance(entry, dict):
            raise root.error(f"sources[{index}]", "must be a table ([[sources]])")
        table = _Table(entry, f"sources[{index}]", root.file)
        url = table.get("url", str).strip()
        if not url.startswith(("http://", "https://")):
            raise table.error("url", f"{url!r} must be an http:// or https:// URL")
        name = table.get("name", str, "") or source_name(url)
        if name in found:
            raise table.error("name", f"{name!r} names two sources; give each a unique name")
        source_topics = tuple(table.get("topics", list, []))
        unknown = [t for t in source_topics if t not in topics]
        if unknown:
            raise table.error("topics", f"unknown topic(s) {', '.join(map(str, unknown))}; "
                                        "use slugs from [[topics]]")
        language = table.get("language", str, "")
        found[name] = Source(
            name=name, url=url, origin="config",
            title=table.get("title", str, None),
            language=canonical_language(language) if language else None,
            topics=source_topics,
            full_text=table.get("full_text", bool, False),
            min_interval=table.positive("min_interval", fetch.min_interval),
            max_interval=table.positive("max_interval", fetch.max_interval),
            enabled=table.get("enabled", bool, True),
        )
    return tuple(found.values())


def source_name(url: str) -> str:
    """A readable default name for a source: its host and path, without www. or scheme."""
    rest = url.split("://", 1)[-1].removeprefix("www.")
    return rest.rstrip("/")[:200]


def _topics(root: _Table, site_language: str) -> tuple[Topic, ...]:
    entries = root.get("topics", list, [])
    topics: list[Topic] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise root.error(f"topics[{index}]", "must be a table ([[topics]])")
        table = _Table(entry, f"topics[{index}]", root.file)
        slug = table.get("slug", str)
        if not _SLUG.match(slug):
            raise table.error("slug", f"{slug!r} must be lowercase letters, digits and dashes")
        if any(t.slug == slug for t in topics):
            raise table.error("slug", f"{slug!r} is used by two topics; make it unique")
        language = canonical_language(table.get("language", str, site_language))
        topics.append(
            Topic(
                slug=slug,
                language=language,
                titles=_with_language(table.texts("title"), language),
                descriptions=_with_language(table.texts("description", {"": slug}), language),
                min_score=table.positive("min_score", 2),
                rule=_topic_rule(table),
            )
        )
    return tuple(topics)


_RULE_KEYS = ("any", "all", "none")


def _topic_rule(table: _Table) -> Rule:
    """`rule = {...}`, or plain `terms = [...]` meaning `rule = { any = [...] }`."""
    if table.data.get("decide") == "model" and not {"rule", "terms"} & set(table.data):
        return Rule("any", ())  # decided by the trained model alone
    if ("rule" in table.data) == ("terms" in table.data):
        raise table.error("rule", 'give either rule = { any = ["...", ...] } or terms = [...]'
                                  ' (or decide = "model" to leave it to the trained model)')
    if "terms" in table.data:
        return Rule("any", _rule_parts(table.data["terms"], f"{table.where}.terms", table))
    value = table.get("rule", dict)
    rule = _rule(value, f"{table.where}.rule", table)
    if rule.op == "none":
        raise table.error("rule", "matches nothing with only `none`; add any = [...] or "
                                  "all = [...] beside it")
    return rule


def _rule(value: dict, where: str, table: _Table) -> Rule:
    """A rule table: each of any/all/none present must hold (so several keys mean all)."""
    unknown = sorted(set(value) - set(_RULE_KEYS))
    if unknown:
        raise _rule_error(table, where, f"unknown key(s) {', '.join(unknown)}; use any, all, "
                                        'none (or entity = "org:..." as a part)')
    if not value:
        raise _rule_error(table, where, "is empty; use any, all or none")
    rules = [Rule(op, _rule_parts(value[op], f"{where}.{op}", table))
             for op in _RULE_KEYS if op in value]
    return rules[0] if len(rules) == 1 else Rule("all", tuple(rules))


def _rule_parts(parts: Any, where: str, table: _Table) -> tuple[str | EntityRef | Rule, ...]:
    if not isinstance(parts, list) or not parts:
        raise _rule_error(table, where, "must be a non-empty array of words, phrases, "
                                        "{ entity = \"...\" } or nested rules")
    return tuple(_rule_part(part, f"{where}[{index}]", table) for index, part in enumerate(parts))


def _rule_part(part: Any, where: str, table: _Table) -> str | EntityRef | Rule:
    if isinstance(part, str) and part.strip():
        return part.strip()
    if isinstance(part, dict) and set(part) == {"entity"}:
        return _entity(part["entity"], f"{where}.entity", table)
    if isinstance(part, dict):
        return _rule(part, where, table)
    raise _rule_error(table, where, f"{part!r} must be a word or phrase, "
                                    "{ entity = \"org:...\" } or a nested { any = [...] }")


def _entity(tag: Any, where: str, table: _Table) -> EntityRef:
    from feeds.tagging import gazetteer  # here: only rules with entities need the matching stack

    try:
        entities = gazetteer()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(tag, str) or tag not in entities:
        close = difflib.get_close_matches(str(tag), entities, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise _rule_error(table, where, f"{tag!r} is not in the gazetteer{hint}; use a tag "
                                        "such as org:isis from feeds/data/gazetteer.tsv")
    return EntityRef(tag)


def _rule_error(table: _Table, where: str, problem: str) -> ConfigError:
    return ConfigError(f"{table.file}: {where}: {problem}")


def _with_language(texts: dict[str, str], language: str) -> dict[str, str]:
    """A plain string stands for the topic's own language."""
    return {k or language: v for k, v in texts.items()}
