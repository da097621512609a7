"""Search: upload or take a photo, every face boxed, candidates with evidence, score and FMR.

The probe stays in memory (``WebState.probes``) for 30 minutes unless saved to a case: the
uploaded bytes, the photo as shown (downscaled, bystanders blurred: ``imaging.shown``) and its
face crops, rendered once while the photo is decoded for the search. ``POST /api/search``
answers with the JSON of ``pof search --json`` plus ``probe``, the token to propose an
identification through the API.

Every uploaded photo is measured from its header before it is decoded: over the pixel limit
(the setting ``max_pixels``) it is refused (413); otherwise its pixels are charged to the
user's ``pixel_rate`` and held in the app's ``PixelBudget`` while a worker thread decodes,
analyses and renders it (``WebState.run_photo``).
"""
from __future__ import annotations

import io

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from PIL import Image

from pof.casework import audit
from pof.casework.accounts import User
from pof.errors import ImageError, PofError
from pof.matching.results import FaceResult
from pof.stages.load import LoadedImage, decode_image
from pof.web import imaging
from pof.casework import cases
from pof.web.auth import api, page
from pof.web.clips import limits as clip_limits
from pof.web.errors import BadRequest, NotFound, TooLarge, Unsupported, WebError, title_of
from pof.web.state import Probe, WebState

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


def megapixels(n: int) -> str:
    return f"{n / 1e6:.1f}".removesuffix(".0")


def photo_size(state: WebState, data: bytes, name: str) -> tuple[int, int]:
    """(width, height) read from the image's header, nothing decoded; TooLarge over the
    app's pixel limit, Unsupported if the bytes are not an image."""
    limit = state.max_pixels
    if not data:
        raise Unsupported(f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except Image.DecompressionBombError:
        raise TooLarge(f"{name}: photo is over the limit of {megapixels(limit)} MP; "
                       "send a smaller photo") from None
    except Exception:      # Pillow raises many types on hostile input
        raise Unsupported(f"{name}: not an image (format not recognised from its bytes)") from None
    if w * h > limit:
        raise TooLarge(f"{name}: photo of {megapixels(w * h)} MP ({w} x {h}) is over the limit "
                       f"of {megapixels(limit)} MP; send a smaller photo")
    if w < 8 or h < 8:
        raise BadRequest(f"{name}: {w} x {h} pixels is too small to hold a face; send a larger "
                         "photo", title="Photo too small")
    return w, h


async def read_upload(state: WebState, upload, what: str = "image") -> tuple[bytes, tuple[int, int]]:
    """An uploaded file's bytes, read within the size limit, and its (width, height)."""
    data, size = await read_photo_or_clip(state, upload, what, clips=False)
    return data, size


async def read_photo_or_clip(state: WebState, upload, what: str = "image", clips: bool = True
                             ) -> tuple[bytes, tuple[int, int] | None]:
    """An uploaded file's bytes, read within the size limit of a photo or (``clips``) of a
    clip, and a photo's (width, height); None for a clip (its first bytes name a video
    container: ``pof.web.clips``)."""
    from pof.web.clips import check_size, kind_of, limits
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
        raise BadRequest(f"choose a photo to upload (form field {what!r})")
    limit = state.config.max_upload_bytes
    head = await upload.read(limit + 1)
    if clips and kind_of(head):
        data = head + await upload.read(max(0, limits()[1] - len(head)) + 1)
        check_size(data, upload.filename)
        return data, None
    if len(head) > limit:
        raise TooLarge(f"{upload.filename}: over {limit // 2**20} MiB; send a smaller photo")
    return head, photo_size(state, head, upload.filename)


def decode(state: WebState, data: bytes, name: str) -> LoadedImage:
    """Decode an upload (in a worker thread); Unsupported with the reason if it cannot be (its
    header was read already: an image whose data is broken, not a file of another kind)."""
    try:
        return decode_image(data, name, state.max_pixels)
    except ImageError as exc:
        raise Unsupported(str(exc), title="Photo cannot be read") from None


WHERE = ("agency", "unit")       # search narrowing the search form offers


def _search(state: WebState, data: bytes, name: str, where: dict[str, str]
            ) -> tuple[dict, list[FaceResult]]:
    """Decode, search and render one probe (in a worker thread): the fields of its Probe,
    which keeps its results as their JSON (as a case photo keeps them), and the results."""
    searcher = state.searcher(where)          # before the models run: a bad filter fails fast
    loaded = decode(state, data, name)
    faces = state.analyze(loaded.pixels)
    results = searcher.search(faces, state.config.candidates()) if faces else []
    kept = [r.to_json() for r in results]
    image, crops = imaging.render(loaded.pixels, kept, set())
    return {"sha256": loaded.sha256, "size": loaded.size, "results": kept, "image": image,
            "crops": crops}, results


def _rerender(state: WebState, probe: Probe) -> tuple[bytes, dict[int, bytes]]:
    return imaging.render(decode(state, probe.data, probe.name).pixels, probe.results, probe.officer)


async def rerender(state: WebState, probe: Probe) -> None:
    """Render the probe's image and crops again (its officer marks changed); a clip's shown
    faces are its tracks' best face JPEGs, kept as they were taken."""
    if probe.video is not None:
        from pof.web.clips import shown_crops
        probe.crops = shown_crops(probe)
    else:
        probe.image, probe.crops = await state.run_photo(None, probe.pixels, _rerender, state, probe)
    state.probes.changed(probe)


async def run_search(request: Request, user: User, upload, form=None) -> tuple[str, Probe]:
    """Rate-limit, read, search (within ``agency`` / ``unit`` if the form gives them), log;
    the probe is kept in memory under a new token."""
    state: WebState = request.app.state.web
    state.limiter.hit(f"search:{user.name}", state.config.search_rate, "searches")
    where = {k: str(form.get(k, "")).strip() for k in WHERE if form is not None and str(form.get(k, "")).strip()}
    data, size = await read_photo_or_clip(state, upload)
    name = upload.filename or "photo"
    if size is None:
        return await run_clip_search(request, user, data, name, where)
    w, h = size
    found, results = await state.run_photo(user.name, w * h, _search, state, data, name, where)
    probe = Probe(user.name, name, data, where=where, **found)
    with state.db() as db:                    # logged even if the probe is too large to keep
        audit.append(db, user.name, "search", image_sha256=probe.sha256, faces=len(results), where=where,
                     via="api" if request.url.path.startswith("/api/") else "web",
                     results=[{"decision": r.decision, "top": r.top.person if r.top else None,
                               "score": r.top.score if r.top else None} for r in results])
    token = state.probes.put(probe)
    return token, probe


async def run_clip_search(request: Request, user: User, data: bytes, name: str,
                          where: dict[str, str]) -> tuple[str, Probe]:
    """Measure, charge, search and log a clip (``pof.web.clips``); its bytes are dropped
    once searched, the probe keeps what the result page shows."""
    from pof.web import clips
    state: WebState = request.app.state.web
    with clips.clip_file(data) as path:
        m = await state.run(clips.measure, path, name, state.max_pixels)
        result = await state.run_clip(user.name, m.frame_pixels, m.analysed, clips.search,
                                      state, path, name, where, m)
    probe = clips.clip_probe(user.name, name, data, m.size, result, where)
    with state.db() as db:
        audit.append(db, user.name, "search", image_sha256=probe.sha256, video=True,
                     tracks=len(result.tracks), where=where, error=result.error,
                     via="api" if request.url.path.startswith("/api/") else "web",
                     results=[{"track": t.track, "start": t.start, "end": t.end,
                               "decision": t.decision, "top": t.top.person if t.top else None,
                               "score": t.top.score if t.top else None} for t in result.tracks])
    token = state.probes.put(probe)
    return token, probe


@router.get("/")
async def home(user: User = Depends(page())) -> Response:
    return RedirectResponse("/search", 303)


@router.get("/search")
async def search_form(request: Request, user: User = Depends(page())) -> Response:
    """The upload form (a saved photo, or one taken with the phone camera)."""
    return show_form(request, user)


# what to change, by the status of a search that failed
_HINTS = {413: "Downscale the photo or crop it to the faces (a clip: cut it shorter), then search again.",
          415: "Choose a photo file (JPEG, PNG, WebP, GIF, TIFF, BMP...) or a clip (MP4, WebM...).",
          429: "Wait as long as it says, then search again: nothing was searched."}


def show_form(request: Request, user: User, error: str | None = None, status: int = 200,
              where: dict[str, str] | None = None, title: str = "", clip: bool = False) -> Response:
    """The search form; after a failed search, with the reason and what to change at the top
    (the user stays on the form) and the narrowing they had chosen kept."""
    state = request.app.state.web
    with state.db() as db:
        from pof.web.gallery_routes import browse
        choices = {k: v for k, v in browse(db, user, {})[1].items() if k in WHERE and v}
    return state.templates.TemplateResponse(request, "search.html", {
        "user": user, "csrf": request.state.csrf, "fpir": state.pipeline_setting("fpir"),
        "choices": choices, "error": error, "title": title, "status": status,
        "hint": _HINTS.get(status) if error else None, "clip": clip,
        "where": where or {}, "max_mp": megapixels(state.max_pixels),
        "max_mib": state.config.max_upload_bytes // 2**20,
        "max_video_s": clip_limits()[0], "max_video_mib": clip_limits()[1] // 2**20}, status_code=status)


def _looks_like_clip(upload) -> bool:
    """Whether an upload that failed was a clip (its first bytes, read again)."""
    from pof.web.clips import kind_of
    try:
        upload.file.seek(0)
        return kind_of(upload.file.read(16)) is not None
    except (OSError, ValueError, AttributeError):
        return False


@router.post("/search")
async def search_page(request: Request, user: User = Depends(page())) -> Response:
    form = await request.form()
    # the form offers a saved photo (image) and the phone camera (camera): the one given
    upload = next((f for f in (form.get("image"), form.get("camera"))
                   if getattr(f, "filename", None)), None)
    try:
        token, _ = await run_search(request, user, upload, form)
    except (WebError, PofError) as exc:
        status = exc.status if isinstance(exc, WebError) else getattr(exc, "status", 400)
        where = {k: str(form.get(k, "")).strip() for k in WHERE}
        title = title_of(status, getattr(exc, "title", None))
        clip = upload is not None and upload.filename and _looks_like_clip(upload)
        return show_form(request, user, str(getattr(exc, "message", exc)), status, where, title,
                         clip=bool(clip))
    return RedirectResponse(f"/probes/{token}", 303)


@router.get("/probes/{token}")
async def probe_page(request: Request, token: str, user: User = Depends(page())) -> Response:
    """Every face of the probe with its decision and candidates side by side with evidence."""
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    with state.db() as db:
        my_cases = cases.listing(db, user)[:50]          # the cases this user may add to
    from pof.web.clips import mmss
    return state.templates.TemplateResponse(request, "result.html", {
        "user": user, "csrf": request.state.csrf, "token": token, "probe": probe,
        "faces": probe.results, "cases": my_cases, "mmss": mmss,
        "strips": [len(probe.frames.get(i, ())) for i in range(len(probe.results))],
        "visible": [imaging.visible(r, i, probe.officer) for i, r in enumerate(probe.results)]},
        headers=NO_STORE)


@router.get("/probes/{token}/image.jpg")
async def probe_image(request: Request, token: str, user: User = Depends(page())) -> Response:
    """The photo as rendered when it was searched (or when a face was last marked)."""
    probe = request.app.state.web.probes.get(token, user.name)
    if not probe.image:
        raise NotFound("this search was a clip: its tracks' frames are shown one by one")
    return Response(probe.image, media_type="image/jpeg", headers=NO_STORE)


@router.get("/probes/{token}/faces/{n}.jpg")
async def probe_face(request: Request, token: str, n: int, user: User = Depends(page())) -> Response:
    """A face of the probe, only if it may be shown (a match, or marked as an officer)."""
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    if not 1 <= n <= len(probe.results) or not imaging.visible(probe.results[n - 1], n - 1, probe.officer):
        raise NotFound("this face is blurred (a bystander unless a reviewer marks it as an officer)")
    if n - 1 not in probe.crops:
        await rerender(state, probe)
    if n - 1 not in probe.crops:
        raise NotFound(f"no image of face {n} was kept")
    return Response(probe.crops[n - 1], media_type="image/jpeg", headers=NO_STORE)


@router.get("/probes/{token}/tracks/{n}/frames/{k}.jpg")
async def probe_track_frame(request: Request, token: str, n: int, k: int,
                            user: User = Depends(page())) -> Response:
    """Frame k (1-based, in time order) of the faces the decision on track n of a clip used:
    as taken if the track may be shown (a match, or marked as an officer), blurred if not."""
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    frames = probe.frames.get(n - 1, []) if 1 <= n <= len(probe.results) else []
    if not 1 <= k <= len(frames):
        raise NotFound(f"no frame {k} of track {n} in this search")
    jpeg = frames[k - 1][1]
    if not imaging.visible(probe.results[n - 1], n - 1, probe.officer):
        from pof.web.clips import blurred
        jpeg = await state.run(blurred, jpeg)
    return Response(jpeg, media_type="image/jpeg", headers=NO_STORE)


@router.post("/probes/{token}/faces/{n}/officer")
async def probe_officer(request: Request, token: str, n: int,
                        user: User = Depends(page("reviewer"))) -> Response:
    """A reviewer marks face n as an officer: it is no longer blurred."""
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    if not 1 <= n <= len(probe.results):
        raise NotFound(f"no face {n} in this photo")
    saved, face = probe.photo_id, n - 1
    if probe.video is not None:                  # a clip: track n is face 1 of its case photo
        saved, face = probe.track_photos.get(n - 1), 0
    if saved is not None:                        # saved: its case may no longer be shared
        with state.db() as db:
            cases.photo_readable(db, user, saved)
    if n - 1 not in probe.officer:
        probe.officer.add(n - 1)
        await rerender(state, probe)
    with state.db() as db:
        if saved is not None:
            cases.mark_officer(db, saved, face)
        audit.append(db, user.name, "mark_officer", image_sha256=probe.sha256, face=n,
                     photo=probe.photo_id)
    return RedirectResponse(f"/probes/{token}#face-{n}", 303)


def save_to_case(state: WebState, db, probe: Probe, user: User, case_id: str, title: str,
                 image: bytes | None = None) -> int:
    """Save the probe into an existing case ``user`` may see (id; NotFound for another's case
    not shared with them) or a new one of theirs (title); returns the photo id.
    ``image``: ``cases.case_image(probe)`` if the caller made it already."""
    if probe.photo_id is not None:
        return probe.photo_id
    from pof.web.clips import no_clip
    no_clip(probe, "saving to a case")
    if str(case_id).isdigit():
        cid = cases.readable(db, user, int(case_id))["id"]
    else:
        cid = cases.create(db, title or probe.name, user.name)
    probe.photo_id = cases.save_probe(db, cid, probe, user, image)
    audit.append(db, user.name, "save_probe", case=cid, photo=probe.photo_id, image_sha256=probe.sha256)
    return probe.photo_id


def save_track_to_case(state: WebState, db, probe: Probe, user: User, index: int, case_id: str,
                       title: str) -> int:
    """Save track ``index`` of a clip's probe into a case as ``save_to_case`` saves a photo:
    its best face's JPEG as the case photo, named 'clip.mp4 00:12-00:19', its one face the
    track's result; the frames its decision used are recorded in the audit log (time and
    SHA-256 of each). Returns the photo id (the same one if saved already)."""
    from pof.web.clips import frames_seen, track_photo
    if index in probe.track_photos:
        return probe.track_photos[index]
    photo, jpeg = track_photo(probe, index)
    if str(case_id).isdigit():
        cid = cases.readable(db, user, int(case_id))["id"]
    else:
        cid = cases.create(db, title or photo.name, user.name)
    pid = cases.save_probe(db, cid, photo, user, jpeg)
    probe.track_photos[index] = pid
    audit.append(db, user.name, "save_probe", case=cid, photo=pid, image_sha256=probe.sha256,
                 track=index + 1, frames_seen=frames_seen(probe, index))
    return pid


@router.post("/probes/{token}/save")
async def probe_save(request: Request, token: str, user: User = Depends(page())) -> Response:
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    form = await request.form()
    image = None
    from pof.web.clips import no_clip
    no_clip(probe, "saving to a case")
    if probe.photo_id is None:
        image = await state.run_photo(None, probe.pixels, cases.case_image, probe)
    with state.db() as db:
        pid = save_to_case(state, db, probe, user, str(form.get("case_id", "")), str(form.get("title", "")),
                           image)
        cid = cases.photo(db, pid)["case_id"]
    return RedirectResponse(f"/cases/{cid}", 303)


@router.post("/api/search", tags=["search"])
async def api_search(request: Request, image: UploadFile, user: User = Depends(api())) -> JSONResponse:
    """Search every face of ``image`` (multipart; a photo, or a short clip: one decision per face
    track): ``pof search --json``'s JSON, plus ``probe`` (a token,
    valid 30 minutes, to propose an identification with ``POST /api/identifications``).
    Optional form fields ``agency`` and ``unit`` search only those persons (the threshold is
    then calibrated for them)."""
    token, probe = await run_search(request, user, image, await request.form())
    if probe.video is not None:              # a clip: pof search --json's object for a video
        return JSONResponse({"video": probe.name, **probe.video, "tracks": probe.results,
                             "probe": token, "where": probe.where}, headers=NO_STORE)
    return JSONResponse({"image": probe.name, "error": None if probe.results else "no face found",
                         "faces": probe.results, "probe": token, "where": probe.where}, headers=NO_STORE)
