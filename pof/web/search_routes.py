"""Search: upload or take a photo, every face boxed, candidates with evidence, score and FMR.

The probe stays in memory (``WebState.probes``) for 30 minutes unless saved to a case; the
photo shown has bystanders blurred (``imaging.shown``). ``POST /api/search`` answers with the
JSON of SPEC §4 plus ``probe``, the token to propose an identification through the API.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .. import audit
from ..accounts import User
from ..errors import ImageError
from ..load import LoadedImage, decode_image
from . import cases, imaging
from .auth import api, page
from .errors import BadRequest, NotFound, TooLarge, Unsupported
from .state import Probe, WebState

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


async def read_upload(state: WebState, upload, what: str = "image") -> LoadedImage:
    """An uploaded file read within the size limit and sniffed as an image (pof.load)."""
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", None):
        raise BadRequest(f"choose a photo to upload (form field {what!r})")
    limit = state.config.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{upload.filename}: over {limit // 2**20} MiB; send a smaller photo")
    try:
        return decode_image(data, upload.filename, state.config.max_pixels)
    except ImageError as exc:
        raise Unsupported(str(exc)) from None


WHERE = ("agency", "unit")       # search narrowing the search form offers


def _search(state: WebState, loaded: LoadedImage, where: dict[str, str]) -> list[dict]:
    searcher = state.searcher(where)          # before the models run: a bad filter fails fast
    faces = state.analyze(loaded.pixels)
    return searcher.search(faces, state.config.top) if faces else []


async def run_search(request: Request, user: User, upload, form=None) -> tuple[str, Probe]:
    """Rate-limit, read, search (within ``agency`` / ``unit`` if the form gives them), log;
    the probe is kept in memory under a new token."""
    state: WebState = request.app.state.web
    state.limiter.hit(f"search:{user.name}", state.config.search_rate, "searches")
    where = {k: str(form.get(k, "")).strip() for k in WHERE if form is not None and str(form.get(k, "")).strip()}
    loaded = await read_upload(state, upload)
    results = await run_in_threadpool(_search, state, loaded, where)
    probe = Probe(user.name, upload.filename or "photo", loaded.pixels, loaded.sha256, results, where)
    token = state.probes.put(probe)
    with state.db() as db:
        audit.append(db, user.name, "search", image_sha256=loaded.sha256, faces=len(results), where=where,
                     via="api" if request.url.path.startswith("/api/") else "web",
                     results=[{"decision": r["decision"], "top": r["candidates"][0]["person"]
                               if r["candidates"] else None,
                               "score": r["candidates"][0]["score"] if r["candidates"] else None}
                              for r in results])
    return token, probe


@router.get("/")
async def home(user: User = Depends(page())) -> Response:
    return RedirectResponse("/search", 303)


@router.get("/search")
async def search_form(request: Request, user: User = Depends(page())) -> Response:
    """The upload form (file or phone camera)."""
    state = request.app.state.web
    with state.db() as db:
        from .gallery_routes import browse
        choices = {k: v for k, v in browse(db, user, {})[1].items() if k in WHERE and v}
    return state.templates.TemplateResponse(request, "search.html", {
        "user": user, "csrf": request.state.csrf, "fpir": state.pipeline_setting("fpir"),
        "choices": choices})


@router.post("/search")
async def search_page(request: Request, user: User = Depends(page())) -> Response:
    form = await request.form()
    token, _ = await run_search(request, user, form.get("image"), form)
    return RedirectResponse(f"/probes/{token}", 303)


@router.get("/probes/{token}")
async def probe_page(request: Request, token: str, user: User = Depends(page())) -> Response:
    """Every face of the probe with its decision and candidates side by side with evidence."""
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    with state.db() as db:
        my_cases = [c for c in cases.listing(db)][:50]
    return state.templates.TemplateResponse(request, "result.html", {
        "user": user, "csrf": request.state.csrf, "token": token, "probe": probe,
        "faces": probe.results, "cases": my_cases,
        "visible": [imaging.visible(r, i, probe.officer) for i, r in enumerate(probe.results)]},
        headers=NO_STORE)


@router.get("/probes/{token}/image.jpg")
async def probe_image(request: Request, token: str, user: User = Depends(page())) -> Response:
    probe = request.app.state.web.probes.get(token, user.name)
    data = await run_in_threadpool(imaging.shown, probe.pixels, probe.results, probe.officer)
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.get("/probes/{token}/faces/{n}.jpg")
async def probe_face(request: Request, token: str, n: int, user: User = Depends(page())) -> Response:
    """A face of the probe, only if it may be shown (a match, or marked as an officer)."""
    probe = request.app.state.web.probes.get(token, user.name)
    if not 1 <= n <= len(probe.results) or not imaging.visible(probe.results[n - 1], n - 1, probe.officer):
        raise NotFound("this face is blurred (a bystander unless a reviewer marks it as an officer)")
    return Response(imaging.face_crop(probe.pixels, probe.results, probe.officer, n - 1),
                    media_type="image/jpeg", headers=NO_STORE)


@router.post("/probes/{token}/faces/{n}/officer")
async def probe_officer(request: Request, token: str, n: int,
                        user: User = Depends(page("reviewer"))) -> Response:
    """A reviewer marks face n as an officer: it is no longer blurred."""
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    if not 1 <= n <= len(probe.results):
        raise NotFound(f"no face {n} in this photo")
    probe.officer.add(n - 1)
    with state.db() as db:
        if probe.photo_id is not None:
            cases.mark_officer(db, probe.photo_id, n - 1)
        audit.append(db, user.name, "mark_officer", image_sha256=probe.sha256, face=n,
                     photo=probe.photo_id)
    return RedirectResponse(f"/probes/{token}#face-{n}", 303)


def save_to_case(state: WebState, db, probe: Probe, user: User, case_id: str, title: str) -> int:
    """Save the probe into an existing case (id) or a new one (title); returns the photo id."""
    if probe.photo_id is not None:
        return probe.photo_id
    cid = int(case_id) if str(case_id).isdigit() else cases.create(db, title or probe.name, user.name)
    probe.photo_id = cases.save_probe(db, cid, probe, user.name)
    audit.append(db, user.name, "save_probe", case=cid, photo=probe.photo_id, image_sha256=probe.sha256)
    return probe.photo_id


@router.post("/probes/{token}/save")
async def probe_save(request: Request, token: str, user: User = Depends(page())) -> Response:
    state = request.app.state.web
    probe = state.probes.get(token, user.name)
    form = await request.form()
    with state.db() as db:
        pid = save_to_case(state, db, probe, user, str(form.get("case_id", "")), str(form.get("title", "")))
        cid = cases.photo(db, pid)["case_id"]
    return RedirectResponse(f"/cases/{cid}", 303)


@router.post("/api/search", tags=["search"])
async def api_search(request: Request, image: UploadFile, user: User = Depends(api())) -> JSONResponse:
    """Search every face of ``image`` (multipart): SPEC §4's JSON, plus ``probe`` (a token,
    valid 30 minutes, to propose an identification with ``POST /api/identifications``).
    Optional form fields ``agency`` and ``unit`` search only those persons (the threshold is
    then calibrated for them)."""
    token, probe = await run_search(request, user, image, await request.form())
    return JSONResponse({"image": probe.name, "error": None if probe.results else "no face found",
                         "faces": probe.results, "probe": token, "where": probe.where}, headers=NO_STORE)
