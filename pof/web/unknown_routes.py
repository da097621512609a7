"""Unknown faces pages and API: upload event photos, see groups, merge, split, mark as an
officer, propose a name, enrol a group whose name is confirmed."""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from pof.casework import audit, review
from pof.casework.accounts import User
from pof.errors import PofError
from pof.matching.cluster import link_threshold
from pof.dataset.sources import check_label
from pof.web import imaging
from pof.casework import unknown
from pof.web.auth import api, page
from pof.web.errors import BadRequest, Conflict, Forbidden, Unsupported, WebError
from pof.web.search_routes import NO_STORE, decode, read_photo_or_clip

router = APIRouter()


def _analyse(web, data: bytes, name: str) -> tuple[str, bytes | None, list]:
    """Decode and analyse one event photo (in a worker thread): (sha256, the JPEG to store or
    None when no face was found, faces)."""
    loaded = decode(web, data, name)
    faces = web.analyze(loaded.pixels)
    return loaded.sha256, imaging.encode_jpeg(loaded.pixels, 95) if faces else None, faces


def _analyse_clip(web, path, name: str, sha256: str, m) -> list[tuple[str, str, bytes, list]]:
    """Follow the faces of one event clip (in a worker thread): for each track, (its photo
    name, the clip's SHA-256, its best frame as JPEG, [its ``unknown.TrackFace``])."""
    from pof.video.reader import VideoError
    from pof.video.search import scan_video, thresholds
    from pof.web.clips import SLACK_SECONDS
    searcher = web.searcher()
    most = int((m.duration + SLACK_SECONDS) * m.fps) + 1

    def bounded(read: int, _estimate: int) -> None:
        if read > most:
            raise VideoError(f"{name}: the clip runs past the {m.duration:.1f} s its container states")
    scan = scan_video(str(path), web, searcher.gate, thresholds(searcher.gallery.descriptors),
                      progress=bounded, best_frame=True)
    if not scan.tracks:
        raise Unsupported((scan.error or "no face found").replace(str(path), name))
    out = []
    for t in scan.tracks:
        _, _, image, box = t.best
        quality = max(e[1][1] for e in t.pool)
        face = unknown.TrackFace(box, quality, t.template.astype("float32"), round(t.start, 3),
                                 round(t.end, 3))
        out.append((unknown.track_photo_name(name, t.start, t.end), sha256, image, [face]))
    return out


async def _event_clip(web, user: User, data: bytes, name: str) -> list[tuple[str, str, bytes, list]]:
    """Measure, charge and follow one event clip (``pof.web.clips``); its bytes are not kept."""
    import hashlib

    from pof.web import clips
    with clips.clip_file(data) as path:
        m = await web.run(clips.measure, path, name, web.max_pixels)
        return await web.run_clip(user.name, m.frame_pixels, m.analysed, _analyse_clip, web, path,
                                  name, hashlib.sha256(data).hexdigest(), m)


async def _upload(request: Request, user: User, form) -> tuple[dict, list[tuple[str, str]]]:
    """Read every file, find its faces, store the photos with faces and group the faces.
    Each file counts as one search and is charged its pixels; a file that fails (too large,
    not an image, over a limit, no face) is listed with its reason and the rest go on. A clip
    gives one face per face track, its best frame stored as the event photo."""
    web = request.app.state.web
    files = [f for f in form.getlist("images") if not isinstance(f, str)]
    if not files:
        raise BadRequest("choose one or more event photos")
    if len(files) > web.config.max_files:
        raise BadRequest(f"at most {web.config.max_files} photos at a time")
    ok, problems = [], []
    for f in files:
        name = f.filename or "?"
        try:
            web.limiter.hit(f"search:{user.name}", web.config.search_rate, "uploads")
            data, size = await read_photo_or_clip(web, f, "images")
            if size is None:
                ok.extend(await _event_clip(web, user, data, name))
                continue
            w, h = size
            sha, image, faces = await web.run_photo(user.name, w * h, _analyse, web, data, name)
        except WebError as exc:
            problems.append((name, exc.message))
            continue
        if image is None:
            problems.append((name, "no face found, not kept"))
            continue
        ok.append((name, sha, image, faces))
    if not ok:
        return {"event": None, "photos": 0, "faces": 0, "new_groups": 0, "linked_groups": []}, problems
    with web.db() as db:
        summary = unknown.add_event(db, str(form.get("event", "")), ok, user.name, link_threshold())
        audit.append(db, user.name, "unknown_upload", event=summary["event"], photos=summary["photos"],
                     faces=summary["faces"], sha256=[x[1] for x in ok])
    return summary, problems


@router.get("/unknown")
async def unknown_page(request: Request, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        items = unknown.groups(db)
    return web.templates.TemplateResponse(request, "unknown.html", {
        "user": user, "csrf": request.state.csrf, "groups": items, "summary": None, "problems": []})


@router.post("/unknown/upload")
async def upload_page(request: Request, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    form = await request.form()
    summary, problems = await _upload(request, user, form)
    with web.db() as db:
        items = unknown.groups(db)
    return web.templates.TemplateResponse(request, "unknown.html", {     # the event stays filled in
        "user": user, "csrf": request.state.csrf, "groups": items, "summary": summary,
        "problems": problems, "event": str(form.get("event", "")).strip()},
        status_code=200 if summary["event"] else 415)


@router.get("/unknown/groups/{gid}")
async def group_page(request: Request, gid: int, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        g = unknown.group(db, gid)
        if g["merged_into"]:
            return RedirectResponse(f"/unknown/groups/{g['merged_into']}", 303)
        idents = review.listing(db, group_id=gid, with_excluded=user.can("admin"))
        others = [x for x in unknown.groups(db) if x["id"] != gid]
    return web.templates.TemplateResponse(request, "group.html", {
        "user": user, "csrf": request.state.csrf, "group": g, "idents": idents, "others": others,
        "confirmed": next((i for i in idents if i["state"] == "confirmed" and not i["excluded"]), None)},
        headers=NO_STORE)


@router.get("/unknown/faces/{fid}.jpg")
async def face_image(request: Request, fid: int, user: User = Depends(page())) -> Response:
    """An unknown face, blurred unless its group was marked as an officer; any other face of
    the photo that reaches into the crop is blurred too."""
    web = request.app.state.web
    with web.db() as db:
        data, boxes, index, officer = unknown.face_context(db, fid)
    return Response(await web.run(_face_crop, data, boxes, index, officer), media_type="image/jpeg",
                    headers=NO_STORE)


@router.get("/unknown/faces/{fid}/photo.jpg")
async def face_in_photo(request: Request, fid: int, user: User = Depends(page())) -> Response:
    """The event photo a face was seen in, downscaled, the face boxed and every other face
    blurred; the face itself is blurred too until its group is marked as an officer."""
    web = request.app.state.web
    with web.db() as db:
        data, boxes, index, officer = unknown.face_context(db, fid)
    views = _views(request)
    key = (fid, tuple(tuple(b) for b in boxes), index, officer)
    out = views.get(key)
    if out is None:
        out = await web.run(_in_context, data, boxes, index, officer)
        views.put(key, out)
    return Response(out, media_type="image/jpeg", headers=NO_STORE)


def _in_context(data: bytes, boxes: list, index: int, officer: bool) -> bytes:
    px, scale = imaging.decode_jpeg_for(data, imaging.CONTEXT_SIDE)
    return imaging.in_context(px, [[v * scale for v in b] for b in boxes], index, officer)


class _Views:
    """Rendered event-photo views, bounded by their bytes; the least recently used goes first."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self.items: OrderedDict[tuple, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key: tuple, data: bytes) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = data
            self.size += len(data)
            while self.size > self.max_bytes and len(self.items) > 1:
                self.size -= len(self.items.popitem(last=False)[1])


def _views(request: Request) -> _Views:
    state = request.app.state
    views = getattr(state, "unknown_views", None)
    if views is None:
        views = state.unknown_views = _Views()
    return views


CROP_MARGIN = 0.6            # a face crop is its box widened by this x its size on each side


def _face_crop(data: bytes, boxes: list, index: int, officer: bool) -> bytes:
    """Face ``index`` with its surroundings (uniform, badge), the face blurred unless
    ``officer``, every other face blurred."""
    faces = [{"box": b, "decision": "match" if i == index and officer else ""} for i, b in enumerate(boxes)]
    return imaging.face_crop(imaging.decode_jpeg(data), faces, (), index, CROP_MARGIN)


def _group_action(request: Request, gid: int, user: User, action: str, form) -> str:
    """Apply merge / split / officer / propose / enrol to a group; returns where to go next."""
    web = request.app.state.web
    with web.db() as db:
        if action == "merge":
            into = int(str(form.get("into", "0")) or 0)
            unknown.merge(db, gid, into)
            audit.append(db, user.name, "group_merge", group=gid, into=into)
            return f"/unknown/groups/{into}"
        if action == "split":
            new = unknown.split(db, gid, [int(v) for v in form.getlist("faces") if str(v).isdigit()])
            audit.append(db, user.name, "group_split", group=gid, new_group=new)
            return f"/unknown/groups/{new}"
        if action == "officer":
            unknown.mark_officer(db, gid)
            audit.append(db, user.name, "mark_officer", group=gid)
        elif action == "propose":
            person, note = str(form.get("person", "")), str(form.get("note", ""))
            unknown.group(db, gid)
            try:
                ident = review.create(db, review.Subject("group", group_id=gid), person, user, note)
            except review.Duplicate as dup:
                return f"/identifications/{dup.existing}?duplicate=1"
            audit.append(db, user.name, "propose", identification=ident, group=gid, person=person.strip())
            return f"/identifications/{ident}"
        elif action == "enrol":
            return _enrol(web, db, gid, user, str(form.get("label", "")))
        else:
            raise BadRequest(f"unknown action {action!r}")
    return f"/unknown/groups/{gid}"


def _enrol(web, db, gid: int, user: User, label: str) -> str:
    confirmed = next((i for i in review.listing(db, group_id=gid, with_excluded=True)
                      if i["state"] == "confirmed"), None)
    if confirmed is None:
        raise Conflict("a group is enrolled only once a name for it is confirmed")
    if confirmed["excluded"]:
        raise Forbidden(f"the confirmed name {confirmed['person']!r} is on the exclusion list: "
                        "the group cannot be enrolled under it")
    label = label.strip() or re.sub(r"[^A-Za-z0-9_.-]+", "_", confirmed["person"]).strip("_")
    if not label:
        raise BadRequest("give a person label to enrol the group under")
    try:
        check_label(label)
    except PofError as exc:
        raise BadRequest(str(exc)) from None
    if label in review.excluded_persons(db):
        raise Forbidden(f"the person label {label!r} is on the exclusion list: the group cannot be "
                        "enrolled under it")
    result = unknown.enrol(db, web.dataset, gid, label, confirmed["person"], review.get(db, confirmed["id"]), user.name)
    audit.append(db, user.name, "enrol", group=gid, person=label, identification=confirmed["id"], **result)
    return f"/persons/{quote(label, safe='')}"


_ROLES = {"merge": "reviewer", "split": "reviewer", "officer": "reviewer", "propose": "viewer", "enrol": "admin"}



for _action, _role in _ROLES.items():
    def _make(action: str, role: str):
        async def endpoint(request: Request, gid: int, user: User = Depends(page(role))) -> Response:
            form = await request.form()
            target = await run_in_threadpool(_group_action, request, gid, user, action, form)
            return RedirectResponse(target, 303)
        endpoint.__name__ = f"group_{action}"
        return endpoint
    router.add_api_route(f"/unknown/groups/{{gid}}/{_action}", _make(_action, _role), methods=["POST"])


@router.get("/api/unknown/groups", tags=["unknown faces"])
async def api_groups(request: Request, user: User = Depends(api())) -> list[dict]:
    """Groups of unknown faces, largest first."""
    with request.app.state.web.db() as db:
        return unknown.groups(db)


@router.get("/api/unknown/groups/{gid}", tags=["unknown faces"])
async def api_group(request: Request, gid: int, user: User = Depends(api())) -> dict:
    with request.app.state.web.db() as db:
        return unknown.group(db, gid)


@router.post("/api/unknown/events", tags=["unknown faces"], status_code=201)
async def api_upload(request: Request, user: User = Depends(api())) -> JSONResponse:
    """Upload event photos (multipart: ``event``, ``images`` repeated); per-file errors."""
    summary, problems = await _upload(request, user, await request.form())
    return JSONResponse({**summary, "errors": [{"image": n, "reason": r} for n, r in problems]},
                        201 if summary["event"] else 415)
