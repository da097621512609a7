"""The attributes section of pof.json: every schema attribute with its estimator, its measured
validation figure, and an "unreliable" flag.

Validation figures come from ``validation.json`` beside this file, written by
``python bench/attributes.py --write`` (and ``--set lfw --write`` for the hair, facial-hair and
forehead measures) from the hand-labelled sets in ``bench/attributes/``.
An attribute is flagged unreliable when its balanced accuracy there is under
UNRELIABLE_BELOW (chance is 0.5), or when the set holds fewer than MIN_EXAMPLES labelled faces
on either side of it (then it could not be validated), or when a failure seen in validation
falls unevenly across people (KNOWN_UNEVEN).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pof.stages.attributes.schema import COLUMNS, DEMOGRAPHIC, EXCLUDED, SCHEMA, TASKS

VALIDATION = Path(__file__).parent / "validation.json"
UNRELIABLE_BELOW = 0.65
MIN_EXAMPLES = 5
# Flagged unreliable whatever their figure: failures seen that fall unevenly across people.
# A filter on such a score would surface some people more than others for no reason of theirs.
KNOWN_UNEVEN = {
    "Mustache": "shading under the nose reads as a moustache, seen more on darker skin (the "
                "demo portrait of Barack Obama scores 0.89 with none): its errors fall unevenly",
}


@lru_cache(maxsize=1)
def validation() -> dict[str, Any]:
    """The bench's figures ({"set": ..., "attributes": {name: {...}}}), or {} if absent."""
    try:
        return json.loads(VALIDATION.read_text())
    except (OSError, ValueError):
        return {}


def judge(figures: dict[str, Any] | None) -> tuple[bool, str]:
    """(unreliable, why) for one attribute's validation figures (None: not validated)."""
    if not figures:
        return True, "not validated: no hand labels for it"
    if min(figures.get("positives", 0), figures.get("negatives", 0)) < MIN_EXAMPLES:
        return True, f"not validated: under {MIN_EXAMPLES} labelled faces with or without it"
    if figures["balanced_accuracy"] < UNRELIABLE_BELOW:
        return True, f"balanced accuracy {figures['balanced_accuracy']:.2f}, near chance (0.5)"
    return False, ""


def unreliable_names() -> set[str]:
    """Estimated attributes that pof.json flags unreliable (figure near chance, too few
    labels, or errors known to fall unevenly): never offered as filters in the web app."""
    figs = validation().get("attributes", {})
    return {a.name for a in SCHEMA if a.estimator is not None
            and (a.name in KNOWN_UNEVEN or judge(figs.get(a.name))[0])}


def card(settings: dict[str, Any], estimators: dict[str, str]) -> dict[str, Any]:
    """pof.json's "attributes" section for a build with these settings."""
    on = settings.get("attributes", "on") == "on"
    demo = settings.get("demographics", "on") == "on"
    figs = validation().get("attributes", {})
    entries = []
    for a in sorted(SCHEMA, key=lambda a: COLUMNS.index(a.name)):
        e: dict[str, Any] = {"name": a.name, "task": a.task, "estimator": a.estimator,
                             "description": a.description}
        if a.estimator is None:
            e.update(status="not estimated", reason=a.reason)
        elif not on or (a.name in DEMOGRAPHIC and not demo):
            e.update(status="switched off",
                     reason="setting attributes=off" if not on else "setting demographics=off")
        else:
            unreliable, why = judge(figs.get(a.name))
            if a.name in KNOWN_UNEVEN:
                unreliable, why = True, KNOWN_UNEVEN[a.name]
            e.update(status="estimated", validation=figs.get(a.name), unreliable=unreliable)
            if why:
                e["reason"] = why
        entries.append(e)
    return {
        "schema": "LFW attributes (Kumar et al. 2009), 73 less the 6 pof never infers",
        "excluded": list(EXCLUDED), "tasks": list(TASKS), "columns": list(COLUMNS),
        "scores": "0-1 per attribute; empty (CSV) or null (JSON) where not estimated",
        "perceived": "age group and gender are estimates of how a face looks, never used for "
                     "identification; setting demographics=off leaves them out",
        "estimators": estimators if on else {},
        "validation_set": validation().get("set"),
        "validation_set_lfw": validation().get("set_lfw"),
        "attributes": entries,
    }
