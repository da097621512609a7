"""How long a 12 MP phone photo's result page takes in `pof serve`, images included.

    python -m bench web_large_photo [--megapixels 12] [--rounds 3]

Builds a small dataset (Yale subjects 01-03 and pof's demo gallery), creates the app in this
process, signs a viewer in, and for each round uploads through the search form a photo made by
upscaling the demo probe ``obama_joint_session_2009.jpg`` (417 x 800) to about
``--megapixels`` MP, with a bystander's face pasted in (blurred on the page), then GETs the
result page and every image it references (the photo as shown and each face crop), one after
another as the slowest browser would. Prints, per round, the search (upload, decode, analysis,
rendering) and the result page with all its images loaded, and the medians. The first round
also loads the models; it is left out of the medians. Results also go to
bench/results/web_large_photo.json. To measure another copy of pof with the same photo, run it
from a folder without a pof package in it, that copy first on the path:
``cd /tmp && PYTHONPATH=OTHER_CHECKOUT:THIS_CHECKOUT python -m bench web_large_photo``.
"""
from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.harness import DEMO, YALE, parser, save, small_dataset, viewer_session


def photo(megapixels: float) -> bytes:
    """The demo probe upscaled to ``megapixels``, a Yale face (a bystander: not enrolled)
    pasted in its lower left corner, as JPEG."""
    from PIL import Image

    img = Image.open(DEMO / "probes" / "obama_joint_session_2009.jpg").convert("RGB")
    k = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    big = img.resize((round(img.width * k), round(img.height * k)), Image.BICUBIC)
    other = Image.open(YALE / "subject04.normal").convert("RGB")
    other = other.resize((big.width // 3, round(other.height * big.width / 3 / other.width)), Image.BICUBIC)
    big.paste(other, (0, big.height - other.height))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=92)
    print(f"photo: {big.width} x {big.height} ({big.width * big.height / 1e6:.1f} MP), "
          f"{len(buf.getvalue()) / 2**20:.1f} MiB JPEG")
    return buf.getvalue()


def client_for(ds: Path, sid: str):
    """The app in this process with the search limits lifted, signed in as ``sid``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from pof.casework.accounts import fast_hasher
    from pof.web.app import create_app
    from pof.web.state import WebConfig

    limits = {"search_rate": (10**6, 60.0), "pixel_rate": (10**12, 60.0)}
    known = {f.name for f in dataclasses.fields(WebConfig)}    # an older pof has no pixel_rate
    client = TestClient(create_app(ds, WebConfig(hasher=fast_hasher(),
                                                 **{k: v for k, v in limits.items() if k in known})))
    client.cookies.set("pof_session", sid)
    return client


def one_round(client, csrf: str, data: bytes) -> tuple[float, float, int, int]:
    """(search s, result page with its images s, images, their bytes) of one upload."""
    t = time.perf_counter()
    r = client.post("/search", data={"csrf": csrf}, files={"image": ("big.jpg", data, "image/jpeg")},
                    follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    searched = time.perf_counter() - t
    url = r.headers["location"]
    t = time.perf_counter()
    page = client.get(url)
    page.raise_for_status()
    images = sorted(set(re.findall(r'src="(/probes/[^"]+\.jpg)"', page.text)))
    sizes = []
    for src in images:
        got = client.get(src)
        got.raise_for_status()
        sizes.append(len(got.content))
    shown = time.perf_counter() - t
    return searched, shown, len(images), sum(sizes)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp())
    try:
        ds = small_dataset(work, ("01", "02", "03"), ("normal", "happy"))
        sid, csrf = viewer_session(ds)
        data = photo(args.megapixels)
        client = client_for(ds, sid)
        searches, pages, rounds = [], [], []
        for n in range(args.rounds + 1):
            searched, shown, n_images, n_bytes = one_round(client, csrf, data)
            print(f"round {n}{' (models load)' if n == 0 else ''}: search {searched:.2f} s; "
                  f"result page + {n_images} images ({n_bytes / 1024:.0f} KiB) {shown:.3f} s")
            rounds.append({"search_s": round(searched, 3), "page_s": round(shown, 3),
                           "images": n_images, "image_bytes": n_bytes})
            if n:
                searches.append(searched)
                pages.append(shown)
        line = (f"median: search {statistics.median(searches):.2f} s, result page with its images "
                f"{statistics.median(pages):.3f} s (load average {os.getloadavg()[0]:.1f}, "
                f"{os.cpu_count()} cores)")
        print(line)
        save("web_large_photo", {"megapixels": args.megapixels, "rounds": rounds,
                                 "search_median_s": round(statistics.median(searches), 3),
                                 "page_median_s": round(statistics.median(pages), 3)}, line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
