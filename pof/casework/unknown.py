"""Unknown faces (Capture's workflow): event photos -> groups of one unknown person each.

Uploading a set of photos of one event stores them (an explicit save, unlike a search probe),
finds every face and adds the new faces to the existing groups without regrouping those
(``pof.matching.cluster.assign``): a new face, or a group of new faces, joins an existing group when
their faces are alike on average past the same threshold, so one unknown face seen at several
events is one group; the rest are grouped among themselves. Reviewers merge look-alikes that split and split
groups that merged; people propose names (``pof.casework.review``, subject "group"); a group whose name
is confirmed can be enrolled with its provenance. Faces are blurred until a reviewer marks the
group as an officer.

A clip of an event gives one unknown face per face track (``TrackFace``): the track's template
as its descriptor, its best frame as the event photo, and its time range in the clip.
"""
from __future__ import annotations

import csv
import json
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pof.dataset import schema
from pof.dataset.catalog import now
from pof.matching.cluster import assign
from pof.casework.errors import Clash, Invalid, Missing
from pof.runtime.jpeg import decode_jpeg, encode_jpeg



@dataclass(frozen=True)
class TrackFace:
    """A face track of a clip, stored as one unknown face: ``descriptor`` the track's
    template (its descriptors' mean, normalised), ``box`` and ``quality`` its best face's in
    the best frame (the event photo), ``start`` and ``end`` its times in the clip (s)."""

    box: tuple
    quality: float
    descriptor: np.ndarray
    start: float
    end: float
    index: int = 0


def track_photo_name(clip: str, start: float, end: float) -> str:
    """The event photo name of a track: 'clip.mp4 00:12-00:19'."""
    def mmss(t: float) -> str:
        return f"{int(t) // 60:02d}:{int(t) % 60:02d}"
    return f"{clip} {mmss(start)}-{mmss(end)}"


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the unknown-faces tables if missing."""
    schema.ensure(db, "unknown")


def _new_group(db: sqlite3.Connection) -> int:
    return int(db.execute("INSERT INTO unknown_groups (created) VALUES (?)", (now(),)).lastrowid)


def _group_descriptors(db: sqlite3.Connection) -> dict[int, np.ndarray]:
    out: dict[int, list] = {}
    for gid, blob in db.execute("SELECT f.group_id, f.descriptor FROM unknown_faces f JOIN unknown_groups g"
                                " ON g.id = f.group_id WHERE g.merged_into IS NULL"):
        out.setdefault(gid, []).append(np.frombuffer(blob, np.float32))
    return {g: np.stack(v) for g, v in out.items()}


def add_event(db: sqlite3.Connection, name: str, photos: list[tuple[str, str, bytes, list]],
              user: str, threshold: float) -> dict:
    """Store an event's photos (name, SHA-256 of the upload, the photo as JPEG without
    metadata, faces: detected faces, or one ``TrackFace`` for a track of a clip) and group
    their faces; returns
    {event, photos, faces, new_groups, linked_groups}."""
    if not name.strip():
        raise Invalid("give the event a name (place and date)")
    with db:
        event = int(db.execute("INSERT INTO events (name, created_by, created) VALUES (?, ?, ?)",
                               (name.strip()[:200], user, now())).lastrowid)
        rows, descs, photo_of = [], [], []
        for fname, sha256, image, faces in photos:
            pid = int(db.execute("INSERT INTO event_photos (event_id, name, sha256, image, added_by, added)"
                                 " VALUES (?, ?, ?, ?, ?, ?)", (event, fname[:200], sha256,
                                 image, user, now())).lastrowid)
            for f in faces:
                rows.append((pid, f))
                descs.append(f.descriptor)
                photo_of.append(pid)
        existing = _group_descriptors(db)
        new_groups, linked = 0, set()
        if descs:
            joined, fresh = assign(np.stack(descs), threshold, existing, photo_of)
            gids = {}
            for g in range(int(fresh.max()) + 1):
                gids[g], new_groups = _new_group(db), new_groups + 1
            linked.update(int(g) for g in joined if g >= 0)
            targets = [int(j) if j >= 0 else gids[int(f)] for j, f in zip(joined, fresh)]
            for (pid, f), target in zip(rows, targets):
                span = (f.start, f.end) if isinstance(f, TrackFace) else (None, None)
                db.execute("INSERT INTO unknown_faces (photo_id, face_index, box, quality, descriptor, group_id,"
                           " track_start, track_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (pid, f.index, json.dumps([float(v) for v in f.box]), float(f.quality),
                            np.asarray(f.descriptor, np.float32).tobytes(), target, *span))
    return {"event": event, "photos": len(photos), "faces": len(descs), "new_groups": new_groups,
            "linked_groups": sorted(linked)}


EVENT_SEPARATOR = "; "


def groups(db: sqlite3.Connection) -> list[dict]:
    """Active groups (not merged away), largest first, with their events (``event_names``:
    the names in the order first seen, separated by ``EVENT_SEPARATOR``) and a cover face."""
    names: dict[int, list[str]] = {}
    for gid, name in db.execute(
            "SELECT f.group_id, e.name FROM unknown_faces f JOIN event_photos p ON p.id = f.photo_id"
            " JOIN events e ON e.id = p.event_id GROUP BY f.group_id, e.id ORDER BY f.group_id, e.id"):
        if name not in names.setdefault(gid, []):
            names[gid].append(name)
    out = []
    for r in db.execute(
            "SELECT g.id, g.officer, g.enrolled_as, COUNT(f.id) AS faces, MIN(f.id) AS cover,"
            " COUNT(DISTINCT p.event_id) AS events"
            " FROM unknown_groups g JOIN unknown_faces f ON f.group_id = g.id"
            " JOIN event_photos p ON p.id = f.photo_id"
            " WHERE g.merged_into IS NULL GROUP BY g.id ORDER BY faces DESC, g.id"):
        out.append(dict(r, event_names=EVENT_SEPARATOR.join(names.get(r["id"], []))))
    return out


def group(db: sqlite3.Connection, gid: int) -> dict:
    """One group with its faces (id, photo, event, box, quality, and the track's
    ``track_start``, ``track_end`` for a face from a clip). Missing if absent; a merged
    group says where it went."""
    row = db.execute("SELECT * FROM unknown_groups WHERE id = ?", (gid,)).fetchone()
    if row is None:
        raise Missing(f"no unknown group {gid}")
    faces = [dict(r, box=json.loads(r["box"])) for r in db.execute(
        "SELECT f.id, f.photo_id, f.face_index, f.box, f.quality, f.track_start, f.track_end,"
        " p.name AS photo, e.name AS event,"
        " e.id AS event_id, e.created AS event_created FROM unknown_faces f"
        " JOIN event_photos p ON p.id = f.photo_id JOIN events e ON e.id = p.event_id"
        " WHERE f.group_id = ? ORDER BY f.id", (gid,))]
    return {**dict(row), "faces": faces, "events": sorted({f["event"] for f in faces})}


def current_group(db: sqlite3.Connection, gid: int) -> dict:
    """The group ``gid``'s faces are in now: ``gid`` itself, or the group it was merged into
    (followed through later merges)."""
    g = group(db, gid)
    seen = {gid}
    while g["merged_into"] and g["merged_into"] not in seen:
        seen.add(g["merged_into"])
        g = group(db, g["merged_into"])
    return g


def merge(db: sqlite3.Connection, gid: int, into: int) -> None:
    """Move every face of group ``gid`` into group ``into``; ``gid`` stays, marked merged."""
    a, b = group(db, gid), group(db, into)
    if gid == into or a["merged_into"] or b["merged_into"]:
        raise Clash("merge two different groups that are both still active")
    with db:
        db.execute("UPDATE unknown_faces SET group_id = ? WHERE group_id = ?", (into, gid))
        db.execute("UPDATE unknown_groups SET merged_into = ? WHERE id = ?", (into, gid))
        if a["officer"]:
            db.execute("UPDATE unknown_groups SET officer = 1 WHERE id = ?", (into,))


def split(db: sqlite3.Connection, gid: int, face_ids: list[int]) -> int:
    """Move the chosen faces of group ``gid`` into a new group; returns its id."""
    g = group(db, gid)
    own = {f["id"] for f in g["faces"]}
    chosen = [f for f in face_ids if f in own]
    if not chosen or len(chosen) == len(own):
        raise Invalid("tick some, but not all, of the group's faces to split them off")
    with db:
        new = _new_group(db)
        db.executemany("UPDATE unknown_faces SET group_id = ? WHERE id = ?", [(new, f) for f in chosen])
    return new


def mark_officer(db: sqlite3.Connection, gid: int) -> None:
    group(db, gid)
    with db:
        db.execute("UPDATE unknown_groups SET officer = 1 WHERE id = ?", (gid,))


def face_pixels(db: sqlite3.Connection, face_id: int) -> tuple[np.ndarray, list[float], bool]:
    """(photo pixels, face box, may be shown unblurred) of one unknown face."""
    data, box, officer = face_image(db, face_id)
    return decode_jpeg(data), box, officer


def face_image(db: sqlite3.Connection, face_id: int) -> tuple[bytes, list[float], bool]:
    """(the stored photo as JPEG, face box, may be shown unblurred) of one unknown face."""
    row = db.execute("SELECT f.box, p.image, g.officer FROM unknown_faces f JOIN event_photos p"
                     " ON p.id = f.photo_id JOIN unknown_groups g ON g.id = f.group_id WHERE f.id = ?",
                     (face_id,)).fetchone()
    if row is None:
        raise Missing(f"no unknown face {face_id}")
    return row["image"], json.loads(row["box"]), bool(row["officer"])


def face_context(db: sqlite3.Connection, face_id: int) -> tuple[bytes, list[list[float]], int, bool]:
    """(the stored event photo as JPEG, the boxes of every face found in it, the index of
    ``face_id`` among them, whether its group was marked as an officer)."""
    row = db.execute("SELECT f.photo_id, p.image, g.officer FROM unknown_faces f JOIN event_photos p"
                     " ON p.id = f.photo_id JOIN unknown_groups g ON g.id = f.group_id WHERE f.id = ?",
                     (face_id,)).fetchone()
    if row is None:
        raise Missing(f"no unknown face {face_id}")
    faces = db.execute("SELECT id, box FROM unknown_faces WHERE photo_id = ? ORDER BY face_index, id",
                       (row["photo_id"],)).fetchall()
    index = next(i for i, f in enumerate(faces) if f["id"] == face_id)
    return row["image"], [json.loads(f["box"]) for f in faces], index, bool(row["officer"])


def enrol(db: sqlite3.Connection, dataset: Path, gid: int, label: str, name: str,
          confirmed: dict, user: str) -> dict:
    """Enrol a group under ``label`` through pof's builder: one crop (face box widened) per
    face, with provenance (event, photo SHA-256, who confirmed the name)."""
    from pof.dataset.build import Builder
    from pof.redact import region
    g = group(db, gid)
    if g["enrolled_as"]:
        raise Clash(f"group {gid} was already enrolled as {g['enrolled_as']}")
    confirmers = confirmed["confirmed_by"]           # those who count, in the order they confirmed
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for f in g["faces"]:
            px, box, _ = face_pixels(db, f["id"])
            x0, y0, x1, y1 = region(tuple(box), 0.8, px.shape)
            path = Path(tmp) / f"unknown{f['id']}.jpg"
            path.write_bytes(encode_jpeg(np.ascontiguousarray(px[y0:y1, x0:x1]), 95))
            sha = db.execute("SELECT sha256 FROM event_photos WHERE id = ?", (f["photo_id"],)).fetchone()[0]
            rows.append({"path": str(path), "person": label, "name": name or label,
                         "document": f"pof unknown faces: event {f['event']!r}, photo {f['photo']} (sha256 {sha})",
                         "date": f["event_created"][:10],
                         "notes": f"identification {confirmed['id']} confirmed by {', '.join(confirmers)}; "
                                  f"enrolled by {user}"})
        manifest = Path(tmp) / "manifest.csv"
        with manifest.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        report = Builder(dataset, workers=1).run([str(manifest)], progress=False)
    with db:
        db.execute("UPDATE unknown_groups SET enrolled_as = ? WHERE id = ?", (label, gid))
    return {"added_faces": report.added_faces, "problems": [list(p) for p in report.problems]}
