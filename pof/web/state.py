"""What the app holds between requests: settings, the pipeline and searcher, probes in
memory, rate limits, and the worker threads that decode and analyse uploaded photos. One
``WebState`` per app, on ``app.state.web``.

Photos are decoded, analysed and rendered in a small thread pool (``WebState.run``), never on
the event loop. Two budgets bound what photos cost: ``PixelBudget`` caps the pixels being
decoded at once across all users (about two photos of the largest size), and each user may send
``WebConfig.pixel_rate`` pixels per minute besides ``search_rate`` searches. The models analyse
one photo at a time (their own lock); the searcher, decoding and rendering do not wait on it.
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from argon2 import PasswordHasher
from fastapi.templating import Jinja2Templates

from pof.casework import accounts, audit, review
from pof.dataset.catalog import Catalog
from pof.dataset.handle import Dataset
from pof.errors import DatasetError
from pof.web.errors import NotFound, TooLarge, TooMany

HERE = Path(__file__).parent


@dataclass
class WebConfig:
    """Settings of one app. ``hasher`` None means argon2-cffi's defaults (tests pass
    ``pof.casework.accounts.fast_hasher()``). Rate limits are (events, seconds); ``pixel_rate`` is
    (pixels, seconds). ``max_pixels`` and ``top`` None (the default) mean the settings of those
    names (pof.settings: the environment, else pof's default); a value given here is checked
    as the setting's would be."""

    hasher: PasswordHasher | None = None
    login_rate: tuple[int, float] = (10, 60.0)      # login attempts per IP; failures per name before delays
    trusted_proxies: tuple[str, ...] = ()           # addresses/networks whose X-Forwarded-For is used
    argon2_slots: int = 2                           # password checks running at once
    search_rate: tuple[int, float] = (20, 60.0)     # searches (and event photos) per user
    pixel_rate: tuple[int, float] = (150_000_000, 60.0)   # pixels of photos per user
    max_upload_bytes: int = 15 * 2**20              # one image
    max_files: int = 40                             # images in one unknown-faces upload
    max_request_bytes: int = 200 * 2**20
    probe_ttl: float = 1800.0                       # seconds a probe stays in memory
    probe_bytes: int = 256 * 2**20                  # memory all probes held may use together
    max_pixels: int | None = None                   # largest photo, in pixels
    workers: int = 0                                # photo threads; 0: from the cores (2 to 4)
    pixels_in_flight: int | None = None             # None: two photos of max_pixels
    busy_wait: float = 30.0                         # seconds a photo waits for the pixel budget
    top: int | None = None                          # candidates a face; None: the setting `top`

    def candidates(self) -> int:
        """Candidates returned per face: ``top``, else the setting (environment POF_TOP)."""
        from pof.settings import value
        return value("top", self.top)

    def pixel_limit(self) -> int:
        """The largest photo accepted, in pixels: ``max_pixels``, else the setting
        (environment POF_MAX_PIXELS)."""
        from pof.settings import value
        return value("max_pixels", self.max_pixels)


def when(stamp: str | None, seconds: bool = False) -> str:
    """'2026-11-26T19:22:53+00:00' -> '2026-11-26 19:22 UTC' (with seconds if asked)."""
    if not stamp:
        return ""
    date, _, clock = str(stamp).partition("T")
    return f"{date} {clock[:8 if seconds else 5]} UTC" if clock else date


@dataclass
class Probe:
    """An uploaded search photo, in memory only (never written unless saved to a case).

    No decoded pixels are held: ``data`` is the upload as it came (a case photo is made from
    it), ``image`` the photo as the result page shows it (downscaled, bystanders blurred) and
    ``crops`` the JPEG of each face that may be shown, by 0-based index; both are rendered once
    and again only when a reviewer marks a face as an officer."""

    owner: str
    name: str
    data: bytes
    sha256: str
    size: tuple[int, int]                        # (width, height) of the photo
    results: list[dict]
    image: bytes = b""
    crops: dict[int, bytes] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    officer: set[int] = field(default_factory=set)
    photo_id: int | None = None                  # set once saved to a case
    created: float = field(default_factory=time.monotonic)
    # a clip: its tracks are ``results``; {"duration", "fps", "frames_read", "frames_analysed",
    # "error"} here; each track's (time, face JPEG, box in it) of the frames its decision used;
    # the case photo each track was saved as, by track index
    video: dict | None = None
    frames: dict[int, list[tuple[float, bytes, tuple]]] = field(default_factory=dict)
    track_photos: dict[int, int] = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        return self.size[0] * self.size[1]

    @functools.cached_property
    def _results_bytes(self) -> int:
        return len(json.dumps(self.results, default=str))

    @property
    def nbytes(self) -> int:
        """About what the probe takes in memory."""
        return (len(self.data) + len(self.image) + sum(len(c) for c in self.crops.values())
                + sum(len(e[1]) + 96 for f in self.frames.values() for e in f)
                + self._results_bytes + 1024)


class ProbeCache:
    """Probes by random token, dropped after ``ttl`` seconds, oldest first when all of them
    together take more than ``budget`` bytes."""

    def __init__(self, ttl: float, budget: int) -> None:
        self.ttl, self.budget = ttl, budget
        self._items: OrderedDict[str, Probe] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, probe: Probe) -> str:
        """Hold ``probe`` under a new token; TooLarge if it alone is over the budget."""
        if probe.nbytes > self.budget:
            raise TooLarge(f"{probe.name}: this photo needs {probe.nbytes / 2**20:.1f} MiB of "
                           f"memory, over the {self.budget / 2**20:.0f} MiB probes may use; "
                           "send a smaller photo")
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._expire()
            self._items[token] = probe
            self._fit()
        return token

    @property
    def nbytes(self) -> int:
        """Bytes the probes held take together."""
        with self._lock:
            return sum(p.nbytes for p in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def changed(self, probe: Probe) -> None:
        """``probe`` was rendered again: it counts as the newest, and the oldest others go if
        the probes are now over the budget."""
        with self._lock:
            for token, held in self._items.items():
                if held is probe:
                    self._items.move_to_end(token)
                    break
            self._fit()

    def _fit(self) -> None:
        total = sum(p.nbytes for p in self._items.values())
        while total > self.budget and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            total -= old.nbytes

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

    SWEEP_EVERY = 60.0          # seconds between sweeps of keys with nothing left in their window

    def __init__(self) -> None:
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()
        self._longest = 0.0         # the longest window asked for so far
        self._swept = time.monotonic()

    def _queue(self, key: str, window: float, now: float) -> deque:
        """``key``'s events (under the lock). Now and then, keys whose last event is older than
        every window are dropped, so one-off keys (addresses, names) do not pile up."""
        self._longest = max(self._longest, window)
        if now - self._swept > self.SWEEP_EVERY:
            self._swept = now
            for k in [k for k, q in self._hits.items()
                      if not q or (q[-1][0] if isinstance(q[-1], tuple) else q[-1]) < now - self._longest]:
                del self._hits[k]
        return self._hits.setdefault(key, deque())

    def __len__(self) -> int:
        return len(self._hits)

    def hit(self, key: str, rate: tuple[int, float], what: str) -> None:
        n, window = rate
        now = time.monotonic()
        with self._lock:
            q = self._queue(key, window, now)
            while q and q[0] < now - window:
                q.popleft()
            if len(q) >= n:
                wait = int(q[0] + window - now) + 1
                raise TooMany(f"too many {what}; wait {wait} s and try again")
            q.append(now)

    def charge(self, key: str, amount: int, rate: tuple[int, float], what: str) -> None:
        """Count ``amount`` (e.g. pixels) against ``rate`` = (amount, seconds) for ``key``;
        TooMany, with the wait, when the window would go over."""
        limit, window = rate
        now = time.monotonic()
        with self._lock:
            q = self._queue(key, window, now)
            while q and q[0][0] < now - window:
                q.popleft()
            used = sum(a for _, a in q)
            if used + amount > limit:
                freed, wait = used + amount - limit, window
                for t, a in q:
                    freed -= a
                    if freed <= 0:
                        wait = t + window - now
                        break
                raise TooMany(f"too many {what} ({amount / 1e6:.0f} MP more would pass the limit "
                              f"of {limit / 1e6:.0f} MP per {window:.0f} s); wait {int(wait) + 1} s "
                              "and try again")
            q.append((now, amount))


class PixelBudget:
    """Pixels of photos being decoded and analysed at once, across all users."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self._lock = threading.Lock()

    def _take(self, n: int) -> bool:
        with self._lock:
            if self.used and self.used + n > self.total:
                return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.used -= n

    async def acquire(self, n: int, timeout: float) -> int:
        """Wait (without blocking the event loop) until ``n`` pixels fit and take them;
        returns what was taken (to ``release``). TooMany if they do not fit within
        ``timeout`` seconds."""
        n = min(n, self.total)
        deadline = time.monotonic() + timeout
        while not self._take(n):
            if time.monotonic() > deadline:
                raise TooMany(f"the server is busy with other photos; wait {int(timeout)} s and "
                              "try again")
            await asyncio.sleep(0.05)
        return n


class WebState:
    """The dataset, its models and caches, for one app."""

    def __init__(self, dataset: Path, config: WebConfig) -> None:
        self.dataset = Path(dataset)
        self.config = config
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["when"] = when
        self.probes = ProbeCache(config.probe_ttl, config.probe_bytes)
        self.limiter = RateLimiter()
        self.max_pixels = config.pixel_limit()
        self.budget = PixelBudget(config.pixels_in_flight or 2 * self.max_pixels)
        workers = config.workers or min(4, max(2, os.cpu_count() or 1))
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="pof-photo")
        self._pipeline = None
        self._searchers: dict[tuple, object] = {}
        self._searcher_key: tuple | None = None
        self._load_lock = threading.Lock()           # making the pipeline
        self._model_lock = threading.Lock()          # the models analyse one photo at a time
        self._searcher_lock = threading.Lock()
        # DatasetError if there is no dataset, or one this pof cannot read
        with Dataset.open(self.dataset).catalog() as cat:
            for mod in (accounts, audit, review):
                mod.ensure_schema(cat.db)
            from pof.casework import cases, unknown
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

    async def run(self, fn, *args):
        """``fn(*args)`` in the photo pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    async def run_photo(self, user: str | None, pixels: int, fn, *args):
        """``fn(*args)`` in the photo pool for a photo of ``pixels``: charged to ``user``'s
        pixel rate (None: not charged) and held in the budget of pixels in flight until ``fn``
        returns, even if the request is cancelled meanwhile. TooMany when over either."""
        if user is not None:
            self.limiter.charge(f"pixels:{user}", pixels, self.config.pixel_rate, "photo pixels")
        taken = await self.budget.acquire(pixels, self.config.busy_wait)
        try:
            job = self.pool.submit(fn, *args)
        except BaseException:
            self.budget.release(taken)
            raise
        job.add_done_callback(lambda _: self.budget.release(taken))
        return await asyncio.wrap_future(job)

    def accounts(self, db) -> accounts.Accounts:
        return accounts.Accounts(db, self.config.hasher)

    @property
    def pipeline(self):
        """The pipeline (models load on first use)."""
        with self._load_lock:
            if self._pipeline is None:
                from pof.runtime.device import cpu_runtime
                pipe = Dataset.open(self.dataset).pipeline()   # the backend it was built with
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
        with self._model_lock:
            return pipeline.analyze(pixels, with_crops=with_crops)

    def searcher(self, where: dict[str, str] | None = None):
        """The searcher over the gallery minus excluded persons (narrowed to the persons whose
        attribution matches ``where``, e.g. {"agency": "NYPD"}, and calibrated for them),
        rebuilt when the gallery or the exclusion list changes. DatasetError if no one is left."""
        with self.db() as db:
            key = (db.execute("SELECT COUNT(*), MAX(added) FROM faces").fetchone()[:],
                   review.exclusion_version(db))
        wanted = tuple(sorted((k, v) for k, v in (where or {}).items() if v))
        with self._searcher_lock:
            if key != self._searcher_key:
                self._searchers, self._searcher_key = {}, key
            if wanted not in self._searchers:
                dataset = Dataset.open(self.dataset)
                gallery = dataset.gallery()
                if self._pipeline is not None and gallery.descriptor_key and \
                        gallery.descriptor_key != self._pipeline.descriptor_key():
                    raise DatasetError("the dataset was rebuilt with other models while pof "
                                       "serve ran: restart pof serve")
                if wanted:
                    gallery = gallery.filter(**dict(wanted))
                if len(self._searchers) > 8:
                    self._searchers.clear()
                # the search settings resolve as the pipeline's did (pof.settings)
                self._searchers[wanted] = dataset.searcher(gallery)
            return self._searchers[wanted]

    def pipeline_setting(self, name: str):
        """Setting ``name`` as the pipeline has it (before it is made: as it will)."""
        from pof.settings import value
        return self._pipeline.settings[name] if self._pipeline else value(name)

    async def run_clip(self, user: str, frame_pixels: int, frames: int, fn, *args):
        """``fn(*args)`` in the photo pool for a clip of which ``frames`` frames of
        ``frame_pixels`` each will be analysed: all of them are charged to ``user``'s pixel
        rate up front (TooLarge if they alone are over it, TooMany if they do not fit now), and
        one frame's pixels are held in the budget of pixels in flight while ``fn`` runs (the
        frames are decoded one at a time)."""
        total, (limit, window) = frame_pixels * frames, self.config.pixel_rate
        if total > limit:
            raise TooLarge(f"this clip needs {frames} frames of {frame_pixels / 1e6:.1f} MP analysed "
                           f"({total / 1e6:.0f} MP), over the {limit / 1e6:.0f} MP per {window:.0f} s "
                           "one user may send; send a shorter or smaller clip")
        self.limiter.charge(f"pixels:{user}", total, self.config.pixel_rate, "photo pixels")
        return await self.run_photo(None, frame_pixels, fn, *args)
