"""What the app holds between requests: settings, the pipeline and searcher, probes in
memory, rate limits. One ``WebState`` per app, on ``app.state.web``."""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from argon2 import PasswordHasher
from fastapi.templating import Jinja2Templates

from .. import accounts, audit, review
from ..catalog import Catalog
from ..errors import DatasetError
from .errors import NotFound, TooMany

HERE = Path(__file__).parent


@dataclass
class WebConfig:
    """Settings of one app. ``hasher`` None means argon2-cffi's defaults (tests pass
    ``pof.accounts.fast_hasher()``). Rate limits are (events, seconds)."""

    hasher: PasswordHasher | None = None
    login_rate: tuple[int, float] = (10, 60.0)      # login attempts per IP; failures per name before delays
    trusted_proxies: tuple[str, ...] = ()           # addresses/networks whose X-Forwarded-For is used
    argon2_slots: int = 2                           # password checks running at once
    search_rate: tuple[int, float] = (20, 60.0)     # searches per user
    max_upload_bytes: int = 15 * 2**20              # one image
    max_files: int = 40                             # images in one unknown-faces upload
    max_request_bytes: int = 200 * 2**20
    probe_ttl: float = 1800.0                       # seconds a probe stays in memory
    max_probes: int = 64
    max_pixels: int = 40_000_000
    top: int = 5


def when(stamp: str | None, seconds: bool = False) -> str:
    """'2026-11-26T19:22:53+00:00' -> '2026-11-26 19:22 UTC' (with seconds if asked)."""
    if not stamp:
        return ""
    date, _, clock = str(stamp).partition("T")
    return f"{date} {clock[:8 if seconds else 5]} UTC" if clock else date


@dataclass
class Probe:
    """An uploaded search photo, in memory only (never written unless saved to a case)."""

    owner: str
    name: str
    pixels: np.ndarray
    sha256: str
    results: list[dict]
    where: dict[str, str] = field(default_factory=dict)
    officer: set[int] = field(default_factory=set)
    photo_id: int | None = None                  # set once saved to a case
    created: float = field(default_factory=time.monotonic)


class ProbeCache:
    """Probes by random token, dropped after ``ttl`` seconds or when over ``size``."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[str, Probe] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, probe: Probe) -> str:
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._expire()
            self._items[token] = probe
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return token

    def get(self, token: str, user: str) -> Probe:
        """The probe, if it is still held and belongs to ``user``; else NotFound."""
        with self._lock:
            self._expire()
            probe = self._items.get(token)
        if probe is None or probe.owner != user:
            raise NotFound("this search is no longer held (probe photos are kept in memory for "
                           "30 minutes only, unless saved to a case); search again")
        return probe

    def drop(self, token: str) -> None:
        with self._lock:
            self._items.pop(token, None)

    def _expire(self) -> None:
        limit = time.monotonic() - self.ttl
        for k in [k for k, p in self._items.items() if p.created < limit]:
            del self._items[k]


class RateLimiter:
    """Sliding-window counters: ``hit(key, (n, seconds))`` raises TooMany past n per window."""

    def __init__(self) -> None:
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, rate: tuple[int, float], what: str) -> None:
        n, window = rate
        now = time.monotonic()
        with self._lock:
            q = self._hits.setdefault(key, deque())
            while q and q[0] < now - window:
                q.popleft()
            if len(q) >= n:
                wait = int(q[0] + window - now) + 1
                raise TooMany(f"too many {what}; wait {wait} s and try again")
            q.append(now)


class WebState:
    """The dataset, its models and caches, for one app."""

    def __init__(self, dataset: Path, config: WebConfig) -> None:
        self.dataset = Path(dataset)
        self.config = config
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["when"] = when
        self.probes = ProbeCache(config.probe_ttl, config.max_probes)
        self.limiter = RateLimiter()
        self._pipeline = None
        self._searchers: dict[tuple, object] = {}
        self._searcher_key: tuple | None = None
        self._lock = threading.Lock()
        with Catalog(self.dataset) as cat:        # DatasetError if there is no dataset
            for mod in (accounts, audit, review):
                mod.ensure_schema(cat.db)
            from . import cases, unknown
            cases.ensure_schema(cat.db)
            unknown.ensure_schema(cat.db)

    @contextmanager
    def db(self) -> Iterator:
        """A catalog connection for one request (sqlite3.Connection, rows as sqlite3.Row)."""
        cat = Catalog(self.dataset)
        try:
            yield cat.db
        finally:
            cat.close()

    def accounts(self, db) -> accounts.Accounts:
        return accounts.Accounts(db, self.config.hasher)

    @property
    def pipeline(self):
        """The pipeline (models load on first use)."""
        with self._lock:
            if self._pipeline is None:
                from ..device import cpu_runtime
                from ..pipeline import pipeline_for
                with Catalog(self.dataset) as cat:      # the backend the dataset was built with
                    key = cat.get_meta("descriptor_key") or ""
                pipe = pipeline_for(key)
                # the app runs for long: OpenVINO runs the detector where installed; and it
                # analyses one photo at a time (the lock below), so each model may use every core
                if pipe.settings["device"] == "cpu":
                    pipe.settings["runtime"] = cpu_runtime(pipe.settings["runtime"], long_job=True)
                if pipe.settings["threads"] == 0:
                    pipe.settings["threads"] = os.cpu_count() or 1
                self._pipeline = pipe
            return self._pipeline

    def analyze(self, pixels: np.ndarray, with_crops: bool = False) -> list:
        """Faces of an RGB image, one at a time (the models are shared)."""
        pipeline = self.pipeline
        with self._lock:
            return pipeline.analyze(pixels, with_crops=with_crops)

    def searcher(self, where: dict[str, str] | None = None):
        """The searcher over the gallery minus excluded persons (narrowed to the persons whose
        attribution matches ``where``, e.g. {"agency": "NYPD"}, and calibrated for them),
        rebuilt when the gallery or the exclusion list changes. DatasetError if no one is left."""
        from ..search import Gallery, Searcher
        with self.db() as db:
            key = (db.execute("SELECT COUNT(*), MAX(added) FROM faces").fetchone()[:],
                   review.exclusion_version(db))
        wanted = tuple(sorted((k, v) for k, v in (where or {}).items() if v))
        with self._lock:
            if key != self._searcher_key:
                self._searchers, self._searcher_key = {}, key
            if wanted not in self._searchers:
                gallery = Gallery.load(self.dataset)
                if self._pipeline is not None and gallery.descriptor_key and \
                        gallery.descriptor_key != self._pipeline.descriptor_key():
                    raise DatasetError("the dataset was rebuilt with other models while pof "
                                       "serve ran: restart pof serve")
                if wanted:
                    gallery = gallery.filter(**dict(wanted))
                if len(self._searchers) > 8:
                    self._searchers.clear()
                self._searchers[wanted] = Searcher(
                    gallery, target_fpir=self.pipeline_setting("fpir"),
                    fusion=self.pipeline_setting("fusion"),
                    min_interocular=self.pipeline_setting("min_interocular"),
                    max_blur=self.pipeline_setting("max_blur"))
            return self._searchers[wanted]

    def pipeline_setting(self, name: str):
        from ..settings import defaults
        return (self._pipeline.settings if self._pipeline else defaults())[name]
