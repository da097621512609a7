"""How long a 12 MP phone photo's result page takes in `pof serve`, images included.

    python bench/web_large_photo.py [--megapixels 12] [--rounds 3]

Builds a small dataset (Yale subjects 01-03 and pof's demo gallery), creates the app in this
process, signs a viewer in, and for each round uploads through the search form a photo made by
upscaling the demo probe ``obama_joint_session_2009.jpg`` (417 x 800) to about
``--megapixels`` MP, with a bystander's face pasted in (blurred on the page), then GETs the
result page and every image it references (the photo as shown and each face crop), one after
another as the slowest browser would. Prints, per round, the search (upload, decode, analysis,
rendering) and the result page with all its images loaded, and the medians. The first round
also loads the models; it is left out of the medians. ``PYTHONPATH=OTHER_CHECKOUT`` measures
another copy of pof with the same photo.
"""
from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):          # PYTHONPATH set: measure that copy of pof
    sys.path.insert(0, str(ROOT))


def build(work: Path) -> Path:
    """Yale subjects 01-03 (normal, happy) and the demo gallery, with a viewer account."""
    from pof.dataset.build import Builder

    src = work / "people"
    for s in ("01", "02", "03"):
        (src / f"subject{s}").mkdir(parents=True)
        for cond in ("normal", "happy"):
            shutil.copy(ROOT / "tests" / "data" / "yale" / f"subject{s}.{cond}", src / f"subject{s}")
    demo = ROOT / "pof" / "data" / "demo"
    manifest = (demo / "manifest.csv").read_text().replace("gallery/", f"{demo / 'gallery'}/")
    (work / "demo.csv").write_text(manifest)
    out = work / "dataset"
    Builder(out, workers=1).run([str(src), str(work / "demo.csv")], progress=False)
    return out


def photo(megapixels: float) -> bytes:
    """The demo probe upscaled to ``megapixels``, a Yale face (a bystander: not enrolled)
    pasted in its lower left corner, as JPEG."""
    from PIL import Image

    img = Image.open(ROOT / "pof" / "data" / "demo" / "probes" / "obama_joint_session_2009.jpg").convert("RGB")
    k = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    big = img.resize((round(img.width * k), round(img.height * k)), Image.BICUBIC)
    other = Image.open(ROOT / "tests" / "data" / "yale" / "subject04.normal").convert("RGB")
    other = other.resize((big.width // 3, round(other.height * big.width / 3 / other.width)), Image.BICUBIC)
    big.paste(other, (0, big.height - other.height))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=92)
    print(f"photo: {big.width} x {big.height} ({big.width * big.height / 1e6:.1f} MP), "
          f"{len(buf.getvalue()) / 2**20:.1f} MiB JPEG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from pof.casework.accounts import Accounts, fast_hasher
    from pof.dataset.catalog import Catalog
    from pof.web.app import create_app
    from pof.web.state import WebConfig

    work = Path(tempfile.mkdtemp())
    try:
        ds = build(work)
        with Catalog(ds) as cat:
            acc = Accounts(cat.db, fast_hasher())
            acc.add("bench", "viewer", "a long benchmark password")
            sid, csrf = acc.new_session("bench")
        data = photo(args.megapixels)
        limits = {"search_rate": (10**6, 60.0), "pixel_rate": (10**12, 60.0)}
        known = {f.name for f in dataclasses.fields(WebConfig)}    # an older pof has no pixel_rate
        client = TestClient(create_app(ds, WebConfig(hasher=fast_hasher(),
                                                     **{k: v for k, v in limits.items() if k in known})))
        client.cookies.set("pof_session", sid)
        searches, pages = [], []
        for n in range(args.rounds + 1):
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
            print(f"round {n}{' (models load)' if n == 0 else ''}: search {searched:.2f} s; "
                  f"result page + {len(images)} images ({sum(sizes) / 1024:.0f} KiB) {shown:.3f} s")
            if n:
                searches.append(searched)
                pages.append(shown)
        print(f"median: search {statistics.median(searches):.2f} s, result page with its images "
              f"{statistics.median(pages):.3f} s (load average {os.getloadavg()[0]:.1f}, "
              f"{os.cpu_count()} cores)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
