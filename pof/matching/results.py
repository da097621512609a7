"""What a search or a verification answers, as frozen values: one class per JSON shape.

Each value holds what the JSON reports, rounded as it is reported (scores and thresholds to
4 decimals, false-match and false-positive identification rates to 3 significant digits,
boxes and interocular distances to 1 decimal), so a reader of the attributes and a reader of
the JSON see the same numbers and reach the same decisions. ``to_json()`` gives the JSON of
``pof search --json``, ``pof verify --json`` and the web API: the same keys, in the same
order, present under the same conditions (docs/cli.md, "pof search").

``Decision.from_json`` reads a kept record back (the web app keeps each probe's and each case
photo's results as that JSON); fields an older or partial record lacks read as None.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MATCH, NO_MATCH, QUALITY_TOO_LOW = "match", "no_match", "quality_too_low"


def rate(value: float) -> float:
    """A false-match or false-positive identification rate as reported: 3 significant digits."""
    return float(f"{value:.3g}")


def box_of(box) -> tuple[float, ...]:
    """A face box (x, y, w, h) as reported: floats to 1 decimal."""
    return tuple(round(float(v), 1) for v in box)


@dataclass(frozen=True)
class Candidate:
    """A gallery person ranked for a query: fused ``score``, the estimated false-match rate
    at it (``fmr``; ``fmr_upper_bound``: no reference impostor scored as high, so the rate is
    at most that), and ``evidence``, the person's gallery face ids most like the query."""

    person: str
    name: str
    score: float
    fmr: float
    fmr_upper_bound: bool
    evidence: tuple[str, ...]

    def to_json(self) -> dict:
        return {"person": self.person, "name": self.name, "score": self.score, "fmr": self.fmr,
                "fmr_upper_bound": self.fmr_upper_bound, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, d: dict) -> "Candidate":
        return cls(d["person"], d.get("name", d["person"]), d.get("score"), d.get("fmr"),
                   bool(d.get("fmr_upper_bound")), tuple(d.get("evidence") or ()))


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The open-set decision on one query: ``match`` when the top candidate's score reaches
    ``threshold`` (calibrated so that a share ``fpir`` of searches of a person not enrolled
    give a match), ``no_match`` below it, ``quality_too_low`` when the face was not searched
    (``reason`` says why; no candidates)."""

    decision: str
    candidates: tuple[Candidate, ...] = ()
    threshold: float | None = None
    fpir: float | None = None
    reason: str | None = None

    @property
    def top(self) -> Candidate | None:
        """The best-ranked candidate, if any."""
        return self.candidates[0] if self.candidates else None

    def candidate(self, person: str) -> Candidate | None:
        """``person``'s candidate entry, None if not among the candidates."""
        return next((c for c in self.candidates if c.person == person), None)

    @classmethod
    def from_json(cls, d: dict) -> "Decision":
        """The decision part of a kept result (one face of a search's JSON)."""
        return cls(decision=d.get("decision"),
                   candidates=tuple(Candidate.from_json(c) for c in d.get("candidates", [])),
                   threshold=d.get("threshold"), fpir=d.get("fpir"), reason=d.get("reason"))


@dataclass(frozen=True, kw_only=True)
class FaceGeometry:
    """Where a face is and how usable it is: ``box`` (x, y, w, h), the detector's score, pof's
    quality score (0-1), the eyes' distance in pixels, the blur measure (0 sharp - 1), and
    ``restored`` (how the face was restored before it was described, e.g. "deblocked"; None
    when it was not)."""

    box: tuple[float, ...]
    det_score: float
    quality: float
    interocular: float
    blur: float
    restored: str | None = None

    def to_json(self) -> dict:
        out = {"box": list(self.box), "det_score": self.det_score, "quality": self.quality,
               "interocular": self.interocular, "blur": self.blur}
        if self.restored:
            out["restored"] = self.restored
        return out


@dataclass(frozen=True, kw_only=True)
class FaceResult(FaceGeometry, Decision):
    """One face of a photo searched: its geometry and the decision, with the rule's
    ``threshold`` and ``fpir`` (always given)."""

    def to_json(self) -> dict:
        out = {**FaceGeometry.to_json(self), "fpir": self.fpir, "threshold": self.threshold,
               "decision": self.decision, "candidates": [c.to_json() for c in self.candidates]}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class LeftOut:
    """A probe face that a multi-probe query left out: its index in the probes, and why."""

    probe: int
    reason: str

    def to_json(self) -> dict:
        return {"probe": self.probe, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class SamePersonResult(Decision):
    """One decision for several faces of one person (``pof search --same-person``): every
    probe face's geometry, the ones left out, and how many made the query
    (``probes_used``; None, with ``threshold`` and ``fpir``, when none could)."""

    probes: tuple[FaceGeometry, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    probes_used: int | None = None

    def to_json(self) -> dict:
        out = {"probes": [p.to_json() for p in self.probes],
               "left_out": [x.to_json() for x in self.left_out]}
        if self.probes_used is not None:
            out.update(probes_used=self.probes_used, fpir=self.fpir, threshold=self.threshold)
        out.update(decision=self.decision, candidates=[c.to_json() for c in self.candidates])
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, kw_only=True)
class TrackResult(Decision):
    """One face track of a video, with one decision (a ``SamePersonResult`` of its best
    frames): its number, first and last time (s), the frames its query used, and the best
    frame's time, box and quality. ``frames``: (time, JPEG of the face, the face's box in
    it) of the frames the decision used, where the search was asked to keep them (not part of
    the JSON)."""

    track: int
    start: float
    end: float
    frames_used: int
    best_frame_time: float
    box: tuple[float, ...]
    quality: float
    frames: tuple[tuple[float, bytes, tuple], ...] = field(default=(), repr=False, compare=False)

    def to_json(self) -> dict:
        out = {"track": self.track, "start": self.start, "end": self.end,
               "frames_used": self.frames_used, "best_frame_time": self.best_frame_time,
               "box": list(self.box), "quality": self.quality, "decision": self.decision,
               "fpir": self.fpir, "threshold": self.threshold,
               "candidates": [c.to_json() for c in self.candidates]}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class VideoResult:
    """A video searched: its length (s), frame rate, frames read and analysed, an ``error``
    (None if it was read to the end and held a face) and its tracks."""

    video: str
    duration: float = 0.0
    fps: float = 0.0
    frames_read: int = 0
    frames_analysed: int = 0
    error: str | None = None
    tracks: tuple[TrackResult, ...] = ()

    def to_json(self) -> dict:
        return {"video": self.video, "duration": self.duration, "fps": self.fps,
                "frames_read": self.frames_read, "frames_analysed": self.frames_analysed,
                "error": self.error, "tracks": [t.to_json() for t in self.tracks]}


@dataclass(frozen=True)
class Verification:
    """Two faces compared (``pof verify``): ``same`` when ``score`` reaches ``threshold``
    (set for the target false-match rate), ``fmr`` at the pair's score, and for each side
    how many faces its photo held and the compared face's box; the JSON gives those two
    only where a photo held more than one face."""

    same: bool
    score: float
    threshold: float
    fmr: float
    faces_x: int = 1
    box_x: tuple[float, ...] = ()
    faces_y: int = 1
    box_y: tuple[float, ...] = ()

    def to_json(self) -> dict:
        out = {"same": self.same, "score": self.score, "threshold": self.threshold, "fmr": self.fmr}
        for side, n, box in (("x", self.faces_x, self.box_x), ("y", self.faces_y, self.box_y)):
            if n > 1:
                out[f"faces_{side}"] = n
                out[f"box_{side}"] = list(box)
        return out
