"""The report's HTML: index.html (the dataset card) and charts.html (every per-image chart).
Plain HTML with relative links to the report's own files, every text escaped; it names no
person and shows no unredacted face."""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import Any

import numpy as np

from pof import __version__
from pof.report.charts import prevalence
from pof.report.data import UNITS, Dataset, images_per_person, validation_text

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.nw { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.principles { background: #fff7e0; border: 1px solid #e8d28a; padding: 0.6em 1.2em; }
.warn { color: #a40000; } .muted { color: #666; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
.sheets { display: flex; flex-wrap: wrap; gap: 1em; } .sheets figure { width: 220px; }
pre { white-space: pre-wrap; background: #f8f8f8; padding: 0.8em; border: 1px solid #eee; }
"""

PRINCIPLES = """
<div class="principles">
<p><strong>How to read this dataset.</strong></p>
<ul>
<li><strong>Candidates, never verdicts.</strong> A search of this dataset gives ranked candidates with
their similarity score and estimated false-match rate. A name becomes an identification only when a
person checks the evidence and confirms it.</li>
<li><strong>No race, ethnicity or attractiveness inference.</strong> pof's attribute schema is LFW's
73 attributes minus Asian, White, Black, Indian, Attractive Man and Attractive Woman; pof never
infers them, nor attributes that are a proxy for skin colour.</li>
<li><strong>Perceived age group and perceived gender are estimates</strong> of how a face looks to a
model, not facts about a person; they are never used for identification. All attribute scores are
automatic and not verified by a person; attributes flagged unreliable should not be relied on.</li>
<li><strong>Restricted data.</strong> Every face in this report is redacted and no person is named; the
dataset itself is for the uses its licence agreement allows, and only those.</li>
</ul>
</div>
"""


def _head(title: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n")


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>\n" for k, v in pairs)


def _figure(src: str, caption: str, alt: str) -> str:
    return (f'<figure><a href="{escape(src)}"><img src="{escape(src)}" alt="{escape(alt)}"></a>'
            f"<figcaption>{caption}</figcaption></figure>\n")


def _summary(ds: Dataset, result) -> str:
    card, counts = ds.card, ds.card.get("counts", {})
    ipp = counts.get("images_per_person", {}) if isinstance(counts, dict) else {}
    per = images_per_person(ds)
    scored = sum(1 for j in range(len(ds.columns)) if (ds.scores[:, j] == ds.scores[:, j]).any())
    pairs = [("version", card.get("version", "")), ("licence", card.get("licence", "")),
             ("created", card.get("created", "")), ("updated", card.get("updated", "")),
             ("images", counts.get("images", len(ds.ids)) if isinstance(counts, dict) else len(ds.ids)),
             ("persons", counts.get("persons", per.size) if isinstance(counts, dict) else per.size),
             ("images per person (mean)", ipp.get("mean", round(float(per.mean()), 2) if per.size else 0)),
             ("attribute columns", f"{len(ds.columns)} ({scored} with scores, {len(ds.columns) - scored} not estimated)"),
             ("crop", _crop(card.get("crop")))]
    return "<table>\n" + _rows(pairs) + "</table>\n"


def _crop(crop: Any) -> str:
    if not isinstance(crop, dict):
        return ""
    return (f"{crop.get('width', '?')} x {crop.get('height', '?')} px {crop.get('format', '')}, "
            f"eyes {crop.get('interocular_px', '?')} px apart; {crop.get('transform', '')}")


def _models(ds: Dataset) -> str:
    models = ds.card.get("models") or {}
    pairs = list(models.items()) if isinstance(models, dict) else []
    att = ds.card.get("attributes")
    if isinstance(att, dict) and isinstance(att.get("estimators"), dict):
        pairs += [(f"attributes: {k}", v) for k, v in att["estimators"].items()]
    cal = ds.card.get("calibration")
    if isinstance(cal, dict):
        pairs += [(f"calibration: {k}", v) for k, v in cal.items() if isinstance(v, (str, int, float))]
    return "<table>\n" + _rows(pairs) + "</table>\n" if pairs else "<p class=\"muted\">pof.json lists no models.</p>\n"


def _attribute_table(ds: Dataset) -> str:
    prev = {j: (m, s, n) for j, m, s, n in prevalence(ds)}
    out = ["<table>\n<tr><th>attribute</th><th>task</th><th>estimator</th><th>status</th>"
           "<th>validation</th><th>unreliable</th><th>mean score</th><th>share &ge; 0.5</th>"
           "<th>images scored</th><th>note</th></tr>\n"]
    for j in ds.ordered():
        c = ds.columns[j]
        m, s, n = prev.get(j, (None, None, 0))
        flag = "" if c.unreliable is None else ('<span class="warn">yes</span>' if c.unreliable else "no")
        mean, share = ("" if m is None else f"{m:.2f}"), ("" if s is None else f"{s:.2f}")
        if not c.is_score:
            v = ds.scores[:, j][np.isfinite(ds.scores[:, j])]
            n = int(v.size)
            mean = f"{v.mean():.1f}{UNITS.get(c.name, '')}" if v.size else ""
        note = "; ".join(x for x in (c.description, c.reason) if x)
        if not c.is_score:
            note = "; ".join(x for x in (note, "a measure, not a 0-1 score (see Statistics)") if x)
        valid = validation_text(c.validation) or ("none" if c.status == "estimated" and c.unreliable is not None else "")
        out.append(f"<tr><td>{escape(c.name)}</td><td class=\"nw\">{escape(c.task)}</td><td>{escape(c.estimator or '')}</td>"
                   f"<td class=\"nw\">{escape(c.status)}</td><td>{escape(valid)}</td><td>{flag}</td>"
                   f"<td class=\"num\">{mean}</td><td class=\"num\">{share}</td><td class=\"num\">{n}</td>"
                   f"<td class=\"muted\">{escape(note)}</td></tr>\n")
    out.append("</table>\n")
    att = ds.card.get("attributes")
    if isinstance(att, dict):
        extra = [att.get(k) for k in ("schema", "scores", "perceived") if isinstance(att.get(k), str)]
        if isinstance(att.get("note"), str):
            extra.append(att["note"])
        if extra:
            out.insert(0, "<p class=\"muted\">" + "<br>".join(escape(e) for e in extra) + "</p>\n")
    return "".join(out)


def _sheets(result) -> str:
    if not result.sheets:
        return "<p class=\"muted\">No crop could be read: no contact sheet.</p>\n"
    verdict = ("finds no face in any of them" if not result.faces_left else
               f'<span class="warn">still finds {result.faces_left} face(s): see Problems</span>')
    parts = ["<p>Each GIF cycles through up to 100 crops, one per frame; its grid shows the same crops "
             "at half size. Faces are redacted, and each grid was checked with pof's own face detector, "
             f"which {verdict}.</p>\n<div class=\"sheets\">\n"]
    for gif in result.sheets[:6]:
        jpg = gif[:-4] + ".jpg"
        parts.append(f'<figure><img src="{escape(gif)}" alt="redacted crops, animated">'
                     f'<figcaption>{escape(gif)} (<a href="{escape(jpg)}">grid</a>)</figcaption></figure>\n')
    parts.append("</div>\n")
    if len(result.sheets) > 6:
        links = ", ".join(f'<a href="{escape(g)}">{int(g[-8:-4])}</a> (<a href="{escape(g[:-4])}.jpg">grid</a>)'
                          for g in result.sheets)
        parts.append(f"<p>All {len(result.sheets)} sheets: {links}</p>\n")
    return "".join(parts)


def _chart_figures(result, limit: int) -> str:
    parts = []
    for i in result.charted[:limit]:
        parts.append(_figure(f"plots/plt-{i}.png",
                             f'Attribute scores of the image <code>"image_id": "{escape(i)}"</code>. '
                             f'<a href="data/{escape(i)}.csv">Download data as CSV</a>', f"scores of {i}"))
    return "".join(parts)


def index_page(ds: Dataset, result) -> str:
    name = str(ds.card.get("name") or ds.folder.name)
    files = set(result.files)
    parts = [_head(f"{name}: dataset card"), f"<h1>{escape(name)}: dataset card</h1>\n",
             f"<p class=\"muted\">Dataset card written by pof {escape(__version__)} on "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.</p>\n",
             PRINCIPLES, "<h2>Dataset</h2>\n", _summary(ds, result)]
    if "mosaic.jpg" in files:
        parts.append(_figure("mosaic.jpg", f"A mosaic of all {len(ds.ids)} crops, redacted and downsized "
                             "to protect the privacy of the people depicted.", "mosaic of redacted crops"))
    parts += ["<h2>Contact sheets</h2>\n", _sheets(result), "<h2>Statistics</h2>\n"]
    for png, cap in (("persons", "Images per person (labelled images only)."),
                     ("pose", "Head pose of each face, degrees: yaw (turn), pitch (tilt), roll (in-plane)."),
                     ("quality", "pof's quality score (1 best) and blur measure (0 sharp)."),
                     ("interocular", "Distance between the eye centres in the source photo, pixels: "
                                     "a measure of face resolution."),
                     ("attributes", "Attribute prevalence: mean score and share of images scored "
                                    "0.5 or more, per attribute, grouped by task.")):
        if f"plots/{png}.png" in files:
            parts.append(_figure(f"plots/{png}.png", escape(cap), png))
    parts += ["<h2>Attributes</h2>\n", _attribute_table(ds), "<h2>Annotated sample images</h2>\n"]
    if result.charted:
        parts.append(f"<p>{len(result.charted)} image(s) charted; <a href=\"charts.html\">all of them</a>. "
                     "Scores are estimated automatically and not verified by a person.</p>\n")
        parts.append(_chart_figures(result, 12))
    else:
        parts.append("<p class=\"muted\">No image charted.</p>\n")
    parts += ["<h2>Models</h2>\n", _models(ds)]
    if result.problems:
        parts.append("<h2>Problems</h2>\n<ul>\n" + "".join(
            f"<li>{escape(a)}: {escape(b)}</li>\n" for a, b in result.problems[:1000]) + "</ul>\n")
    parts += ["<h2>Licence agreement</h2>\n",
              f"<p>Licence: <code>{escape(str(ds.card.get('licence', '')))}</code>. Anyone using this "
              "dataset or this report agrees to these terms:</p>\n",
              f"<pre>{escape(ds.agreement or 'AGREEMENT.md is missing from the dataset.')}</pre>\n",
              "</body>\n</html>\n"]
    return "".join(parts)


def charts_page(ds: Dataset, result) -> str:
    name = str(ds.card.get("name") or ds.folder.name)
    rows = "".join(f'<tr><td><code>{escape(i)}</code></td><td><a href="plots/plt-{escape(i)}.png">chart</a></td>'
                   f'<td><a href="data/{escape(i)}.csv">CSV</a></td></tr>\n' for i in result.charted)
    return (_head(f"{name}: per-image attribute charts") + f"<h1>{escape(name)}: per-image charts</h1>\n"
            "<p><a href=\"index.html\">Back to the dataset card.</a> Scores are estimated automatically and "
            "not verified by a person; perceived age group and gender are estimates.</p>\n"
            f"<table>\n<tr><th>image</th><th>chart</th><th>data</th></tr>\n{rows}</table>\n</body>\n</html>\n")
