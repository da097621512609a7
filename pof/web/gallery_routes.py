"""The digital gallery (OpenOversight's): persons filtered by agency, unit, badge, rank and
any other attribution column, or by a visual attribute of their images; a person page with
every aligned crop, its provenance, and the person's identification history.

Persons on the exclusion list are hidden from everyone but admins (who see them marked).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from pof.casework import review
from pof.casework.accounts import User
from pof.web.auth import api, page
from pof.web.errors import BadRequest, NotFound

router = APIRouter()
FILTERS = ("agency", "unit", "badge", "rank")
_FACE_ID = re.compile(r"^[a-z0-9]{8}$")
ATTRIBUTE_MIN = 0.5


def _people(db, user: User) -> list[dict]:
    excluded = review.excluded_persons(db)
    out = []
    for r in db.execute("SELECT p.label, p.name, p.attribution, COUNT(f.id) AS images,"
                        " MIN(f.id) AS cover FROM persons p LEFT JOIN faces f ON f.person = p.label"
                        " GROUP BY p.label ORDER BY p.name, p.label"):
        if r["label"] in excluded and not user.can("admin"):
            continue
        out.append({"label": r["label"], "name": r["name"], "images": r["images"], "cover": r["cover"],
                    "attribution": json.loads(r["attribution"]), "excluded": r["label"] in excluded})
    return out


def visual_attributes(db) -> list[str]:
    """Attribute names that have scores in this dataset and may narrow a search: no perceived
    age group or gender, and none that pof.json flags unreliable."""
    try:
        from pof.stages.attributes.card import unreliable_names
        from pof.stages.attributes.schema import DEMOGRAPHIC
        left_out = set(DEMOGRAPHIC) | unreliable_names()
    except ImportError:                       # the attributes module is optional here
        left_out = set()
    names: set[str] = set()
    try:
        for (scores,) in db.execute("SELECT scores FROM attributes LIMIT 500"):
            names.update(k for k, v in json.loads(scores).items() if v is not None)
    except Exception:
        return []
    return sorted(n for n in names if n not in left_out)


def _with_attribute(db, label_set: set[str], name: str) -> set[str]:
    """Persons having at least one image scoring ATTRIBUTE_MIN or more on ``name``."""
    keep = set()
    for person, scores in db.execute("SELECT f.person, a.scores FROM attributes a JOIN faces f ON f.id = a.face_id"):
        v = json.loads(scores).get(name)
        if person in label_set and v is not None and float(v) >= ATTRIBUTE_MIN:
            keep.add(person)
    return keep


def browse(db, user: User, query: dict[str, str]) -> tuple[list[dict], dict]:
    """(persons matching ``query``, the filter choices): exact, case-insensitive matches on
    attribution columns, ``q`` in the name or label, ``attribute`` a visual attribute."""
    people = _people(db, user)
    columns = sorted({k for p in people for k in p["attribution"]})
    choices = {k: sorted({str(p["attribution"].get(k, "")) for p in people} - {""})
               for k in columns if k in FILTERS or len({str(p["attribution"].get(k)) for p in people}) <= 30}
    for key, value in query.items():
        if not value:
            continue
        if key == "q":
            people = [p for p in people if value.casefold() in (p["name"] + " " + p["label"]).casefold()]
        elif key == "attribute":
            if value not in visual_attributes(db):
                raise BadRequest(f"{value!r} is not a filter: not scored in this dataset, a "
                                 f"perceived age group or gender, or flagged unreliable")
            keep = _with_attribute(db, {p["label"] for p in people}, value)
            people = [p for p in people if p["label"] in keep]
        elif key in columns:
            people = [p for p in people if str(p["attribution"].get(key, "")).casefold() == value.casefold()]
        else:
            raise BadRequest(f"cannot filter on {key!r}; filters: q, attribute, {', '.join(columns)}")
    return people, choices


def naming(db, label: str, name: str) -> list[int]:
    """Ids of the identifications that named this person, newest first: those giving the label,
    and those of an unknown-faces group enrolled as this person under its name (a group is
    named in words, and enrolled under a label)."""
    try:
        groups = [r[0] for r in db.execute("SELECT id FROM unknown_groups WHERE enrolled_as = ?", (label,))]
    except Exception:                  # a catalog without the unknown-faces tables
        groups = []
    marks = ",".join("?" * len(groups))
    sql = "SELECT id FROM identifications WHERE person = ?"
    if groups:
        sql += f" OR (subject = 'group' AND group_id IN ({marks}) AND person IN (?, ?))"
    args = [label, *groups, name, label] if groups else [label]
    return [r[0] for r in db.execute(sql + " ORDER BY id DESC", args)]


def provenance(db, item: dict, label: str) -> dict:
    """Who proposed the name and from what, who confirmed it and when, and whether the person
    was enrolled from it."""
    proposed = next((e for e in reversed(item["events"]) if e["action"] == "propose"), item["events"][0])
    confirms: list[dict] = []          # the confirmations that count: since the last proposal or reopening
    for e in item["events"]:
        if e["action"] in ("propose", "reopen"):
            confirms = []
        elif e["action"] == "confirm" and e["actor"] in item["confirmed_by"]:
            confirms.append(e)
    enrolled = False
    if item["subject"] == "group" and item["state"] == "confirmed":
        row = db.execute("SELECT enrolled_as FROM unknown_groups WHERE id = ?", (item["group_id"],)).fetchone()
        enrolled = bool(row and row[0] == label)
    source = (f"case photo {item['photo_id']}, face {item['face_index'] + 1}" if item["subject"] == "face"
              else f"unknown group {item['group_id']}")
    return {"proposed_by": proposed["actor"], "proposed": proposed["at"], "source": source,
            "search_decision": item["search_decision"],
            "confirmed_by": list(item["confirmed_by"]), "confirmed": confirms[-1]["at"] if confirms else None,
            "enrolled_from": enrolled}


def person_record(db, user: User, label: str) -> dict:
    """A person, every image with provenance, and their identification history."""
    row = db.execute("SELECT * FROM persons WHERE label = ?", (label,)).fetchone()
    excluded = label in review.excluded_persons(db)
    if row is None or (excluded and not user.can("admin")):
        raise NotFound(f"no person {label!r} in the gallery")
    images = [{"id": r["id"], "source": Path(r["path"]).name, "sha256": r["sha256"],
               "provenance": json.loads(r["provenance"]), "quality": round(r["quality"], 2),
               "added": r["added"]}
              for r in db.execute("SELECT f.id, f.quality, f.added, s.path, s.sha256, s.provenance"
                                  " FROM faces f JOIN sources s ON s.id = f.source_id"
                                  " WHERE f.person = ? ORDER BY f.id", (label,))]
    history = [dict(review.get(db, i), provenance=provenance(db, review.get(db, i), label))
               for i in naming(db, label, row["name"])]
    return {"label": row["label"], "name": row["name"], "attribution": json.loads(row["attribution"]),
            "added": row["added"], "images": images, "identifications": history, "excluded": excluded}


@router.get("/gallery")
async def gallery_page(request: Request, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    query = {k: v.strip() for k, v in request.query_params.items()}
    with web.db() as db:
        people, choices = browse(db, user, query)
        attrs = visual_attributes(db)
    return web.templates.TemplateResponse(request, "gallery.html", {
        "user": user, "csrf": request.state.csrf, "people": people, "choices": choices,
        "query": query, "attributes": attrs})


@router.get("/persons/{label}")
async def person_page(request: Request, label: str, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        person = person_record(db, user, label)
    return web.templates.TemplateResponse(request, "person.html", {
        "user": user, "csrf": request.state.csrf, "person": person})


def image_file(request: Request, user: User, face_id: str) -> Path:
    """The aligned crop DATASET/images/ID.jpg of an enrolled face the user may see."""
    web = request.app.state.web
    if not _FACE_ID.match(face_id):
        raise NotFound("no such image")
    with web.db() as db:
        row = db.execute("SELECT person FROM faces WHERE id = ?", (face_id,)).fetchone()
        hidden = row is not None and row[0] in review.excluded_persons(db) and not user.can("admin")
    path = web.dataset / "images" / f"{face_id}.jpg"
    if row is None or hidden or not path.is_file():
        raise NotFound("no such image")
    return path


@router.get("/images/{face_id}.jpg")
async def image(request: Request, face_id: str, user: User = Depends(page())) -> Response:
    return FileResponse(image_file(request, user, face_id), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/images/{face_id}.jpg", tags=["gallery"])
async def api_image(request: Request, face_id: str, user: User = Depends(api())) -> Response:
    """An aligned 200 x 280 crop of the gallery."""
    return FileResponse(image_file(request, user, face_id), media_type="image/jpeg")


@router.get("/api/persons", tags=["gallery"])
async def api_persons(request: Request, user: User = Depends(api())) -> list[dict]:
    """Persons, filtered by any query parameter as on the gallery page."""
    query = {k: v.strip() for k, v in request.query_params.items()}
    with request.app.state.web.db() as db:
        return browse(db, user, query)[0]


@router.get("/api/persons/{label}", tags=["gallery"])
async def api_person(request: Request, label: str, user: User = Depends(api())) -> dict:
    """A person with every image, its provenance, and the identification history."""
    with request.app.state.web.db() as db:
        return person_record(db, user, label)
