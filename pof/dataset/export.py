"""Write the POF dataset layout (docs/dataset.md) from the catalog.

Every file is written to a temporary name and renamed into place, so a reader never sees half
a file; CHECKSUMS.sha256 is written last, over every other file, in ``sha256sum`` format.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pof import __version__
from pof.stages.align import CROP_H, CROP_INTEROCULAR, CROP_TEMPLATE, CROP_W
from pof.stages.attributes.card import card as attribute_card
from pof.stages.attributes.schema import COLUMNS as ATTRIBUTE_COLUMNS
from pof.stages.attributes.schema import SCHEMA, TASKS
from pof.matching.calibrate import calibrate_gallery
from pof.dataset.catalog import Catalog, now
from pof.runtime.weights import package_version
from pof.runtime.files import atomic_bytes

DEFAULT_AGREEMENT = """# Licence agreement

Whoever uses this dataset agrees to these terms.

- **Non-commercial research only.** The dataset and anything derived from it may be used only
  for non-commercial research, journalism and human-rights work. Selling, trading or otherwise
  exploiting any part of it, directly or indirectly, for commercial purposes is forbidden.
- **No redistribution.** You may not sublicense, publish, copy or pass the dataset, in whole or
  in part, to any third party by any means.
- **No modification.** You may not modify the dataset.
- **No warranty.** The dataset is provided as is. Names in it are candidates produced by
  software and confirmed, where marked, by people; you are responsible for verifying any
  identification before acting on it.
"""

MEASURED_COLUMNS = ("yaw", "pitch", "roll", "blur", "quality")   # after the attributes, as in metadata


def _csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _json_bytes(obj: Any) -> bytes:
    """A list is written one record per line (diff-friendly, and json's C encoder: an
    indented dump goes through the pure-Python one, 0.7 s of a 605-photo build)."""
    if isinstance(obj, list):
        lines = ",\n".join(json.dumps(r, ensure_ascii=False) for r in obj)
        return ("[\n" + lines + "\n]\n" if obj else "[]\n").encode("utf-8")
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _metadata(rows: list) -> tuple[list[dict], list[str]]:
    recs = []
    for r in rows:
        box = json.loads(r["box"])
        lm5, lm68 = np.array(json.loads(r["landmarks5"])), np.array(json.loads(r["landmarks68"]))
        m = np.array(json.loads(r["crop_matrix"]))
        to_crop = lambda p: np.round(p @ m[:, :2].T + m[:, 2], 1).tolist()  # noqa: E731
        prov = json.loads(r["provenance"])
        recs.append({
            "id": r["id"], "person": r["person"] or "", "source_path": r["source_path"],
            "source_sha256": r["source_sha256"], "face_index": r["face_index"],
            "box": box, "det_score": round(r["det_score"], 4),
            "landmarks5": lm5.tolist(), "landmarks68": lm68.tolist(),
            "crop_landmarks5": to_crop(lm5), "crop_landmarks68": to_crop(lm68),
            "pose": json.loads(r["pose"]), "interocular": round(r["interocular"], 1),
            "blur": round(r["blur"], 3), "quality": round(r["quality"], 3),
            "provenance": prov})
    prov_keys = sorted({k for rec in recs for k in rec["provenance"]})
    return recs, prov_keys


def _metadata_csv(recs: list[dict], prov_keys: list[str]) -> bytes:
    header = ["id", "person", "source_path", "source_sha256", "face_index", "box_x", "box_y",
              "box_w", "box_h", "det_score", "landmarks5", "landmarks68", "crop_landmarks5",
              "crop_landmarks68", "yaw", "pitch", "roll", "interocular", "blur", "quality"] + prov_keys
    rows = [[r["id"], r["person"], r["source_path"], r["source_sha256"], r["face_index"], *r["box"],
             r["det_score"], json.dumps(r["landmarks5"]), json.dumps(r["landmarks68"]),
             json.dumps(r["crop_landmarks5"]), json.dumps(r["crop_landmarks68"]),
             r["pose"]["yaw"], r["pose"]["pitch"], r["pose"]["roll"], r["interocular"], r["blur"],
             r["quality"]] + [r["provenance"].get(k, "") for k in prov_keys] for r in recs]
    return _csv_bytes(header, rows)


def _attributes_csv(recs: list[dict], scores: dict[str, dict]) -> bytes:
    """id, one 0-1 column per schema attribute (by task; empty where not estimated), then the
    measured pose (degrees), blur and quality as in metadata.csv."""
    rows = []
    for r in recs:
        s = scores.get(r["id"], {})
        rows.append([r["id"], *(s.get(c, "") for c in ATTRIBUTE_COLUMNS), r["pose"]["yaw"],
                     r["pose"]["pitch"], r["pose"]["roll"], r["blur"], r["quality"]])
    return _csv_bytes(["id", *ATTRIBUTE_COLUMNS, *MEASURED_COLUMNS], rows)


def _attributes_record(r: dict, s: dict[str, float]) -> dict:
    """One attributes.json record: id, then {task: {attribute: score or null}}, then pose,
    blur and quality."""
    rec: dict[str, Any] = {"id": r["id"]}
    for task in TASKS:
        rec[task] = {a.name: s.get(a.name) for a in SCHEMA if a.task == task}
    return {**rec, **r["pose"], "blur": r["blur"], "quality": r["quality"]}


def _identities(cat: Catalog) -> tuple[list[dict], list[str]]:
    people = [{"person": p["label"], "name": p["name"], **json.loads(p["attribution"]),
               "images": p["images"]} for p in cat.persons()]
    extra = sorted({k for p in people for k in p} - {"person", "name", "images"})
    return people, ["person", "name"] + extra + ["images"]


def _card(cat: Catalog, pipeline, recs: list[dict], people: list[dict], added: bool) -> dict:
    per_person = [p["images"] for p in people if p["images"] > 0]
    hist = Counter(per_person)
    version = cat.get_meta("version") or "0.1.0"
    if added and cat.get_meta("exported"):
        major, minor, _ = (int(x) for x in version.split("."))
        version = f"{major}.{minor + 1}.0"
    desc, _, persons, _ = cat.gallery()
    cal = None
    if len(set(persons)) >= 2:
        cal = calibrate_gallery(desc, persons, pipeline.settings["fpir"], pipeline.settings["fusion"]).to_json()
    return {
        "name": cat.folder.name, "version": version, "licence": "pof-agreement (see AGREEMENT.md)",
        "created": cat.get_meta("created"), "updated": now(),
        "counts": {"images": len(recs), "persons": len(per_person),
                   "images_per_person": {"mean": round(float(np.mean(per_person)), 2) if per_person else 0,
                                         "histogram": {str(k): hist[k] for k in sorted(hist)}}},
        "crop": {"width": CROP_W, "height": CROP_H, "format": "JPEG",
                 "interocular_px": CROP_INTEROCULAR, "template_5pt": CROP_TEMPLATE.round(2).tolist(),
                 "transform": "least-squares similarity from the 5 detector landmarks"},
        "models": {**pipeline.describe(), "pof": __version__, "onnxruntime": package_version("onnxruntime"),
                   "dlib": package_version("dlib-bin")},
        "settings": {k: v for k, v in pipeline.settings.items()},
        "calibration": cal,
        "attributes": attribute_card(pipeline.settings, pipeline.attributes.describe()),
    }


def export(cat: Catalog, pipeline, agreement: str | None = None) -> dict:
    """(Re)write every dataset file from the catalog; returns the dataset card (pof.json)."""
    out = cat.folder
    files, card, rows = render(cat, pipeline, agreement)
    for name, data in files.items():
        atomic_bytes(out / name, data)
    _write_checksums(out, [r["id"] for r in rows])
    with cat.transaction():
        cat.set_meta("version", card["version"])
        cat.set_meta("exported", card["updated"])
        cat.set_meta("exported_images", str(len(rows)))
    return card


def render(cat: Catalog, pipeline, agreement: str | None = None) -> tuple[dict[str, bytes], dict, list]:
    """Every dataset file the catalog makes, by name, as bytes (AGREEMENT.md only where
    ``agreement`` is given or the dataset has none), the dataset card, and the catalog's face
    rows in file order; nothing is written."""
    out = cat.folder
    rows = cat.faces()
    recs, prov_keys = _metadata(rows)
    people, id_cols = _identities(cat)
    scores = cat.attributes()
    previous = cat.get_meta("exported_images")
    card = _card(cat, pipeline, recs, people, added=previous != str(len(recs)))
    files: dict[str, bytes] = {
        "metadata.csv": _metadata_csv(recs, prov_keys), "metadata.json": _json_bytes(recs),
        "identities.csv": _csv_bytes(id_cols, [[p.get(c, "") for c in id_cols] for p in people]),
        "identities.json": _json_bytes(people),
        "attributes.csv": _attributes_csv(recs, scores),
        "attributes.json": _json_bytes([_attributes_record(r, scores.get(r["id"], {})) for r in recs]),
        "pof.json": _json_bytes(card),
    }
    if agreement is not None or not (out / "AGREEMENT.md").exists():
        files["AGREEMENT.md"] = (agreement or DEFAULT_AGREEMENT).encode("utf-8")
    buf = io.BytesIO()
    np.save(buf, np.stack([np.frombuffer(r["descriptor"], np.float32) for r in rows])
            if rows else np.zeros((0, 128), np.float32))
    files["descriptors.npy"] = buf.getvalue()
    return files, card, rows


# the files CHECKSUMS.sha256 lists before the crops, in its order
LISTED = ("pof.json", "AGREEMENT.md", "metadata.csv", "metadata.json", "identities.csv",
          "identities.json", "attributes.csv", "attributes.json", "descriptors.npy")


def _write_checksums(out: Path, ids: list[str]) -> None:
    names = list(LISTED) + [f"images/{i}.jpg" for i in ids]
    lines = []
    for n in names:
        h = hashlib.sha256((out / n).read_bytes()).hexdigest()
        lines.append(f"{h}  {n}\n")
    atomic_bytes(out / "CHECKSUMS.sha256", "".join(lines).encode())
