"""The attribute schema: LFW's 73 attributes minus the six pof never infers, in one table.

The 73 are the columns of LFW's ``lfw_attributes.txt`` (Kumar, Berg, Belhumeur, Nayar,
"Attribute and Simile Classifiers for Face Verification", ICCV 2009), which the POF dataset
description follows. pof leaves out Asian, White, Black, Indian, Attractive Man and Attractive
Woman (docs/design.md, "Principles, as features": no race, ethnicity or attractiveness inference), which leaves 67, in three
tasks: age group (5), gender (1, "perceived gender": Male) and visual (61).

``estimator`` names the backend that scores the attribute (see ``pof.stages.attributes``), or is None
where pof gives no score: the attribute is then "not estimated" (empty in attributes.csv) and
``reason`` says why. Perceived age group and gender are estimates of how a face looks, not
facts about a person; they can be switched off (setting ``demographics``) and are never used
for identification.
"""
from __future__ import annotations

from dataclasses import dataclass

TASKS = ("age group", "gender", "visual")
EXCLUDED = ("Asian", "White", "Black", "Indian", "Attractive Man", "Attractive Woman")


@dataclass(frozen=True)
class Attribute:
    name: str                   # exactly as in lfw_attributes.txt
    task: str                   # one of TASKS
    estimator: str | None       # backend name, or None: not estimated
    description: str
    reason: str = ""            # why it is not estimated (estimator None)


_NO_MODEL = "no open model pof can ship scores it soundly, and no sound pixel measure exists"
_HAIR = ("hair style (curl, wave, hairline shape) is a texture and outline the 200 x 280 crop "
         "shows only in part; no sound pixel measure, and no open model pof can ship scores it")
_PROXY = "not inferred: too close a proxy for skin colour or ethnicity (README, 'What pof is for')"
_SHAPE = ("face-shape labels are subjective and dlib's jaw contour is pulled toward the mean "
          "shape; no hand labels to validate a jaw-landmark measure against")
_HAT = ("hats differ too much in colour and shape: the best region measure tried (forehead "
        "unlike the face's skin) scored 0.66 balanced accuracy on held-out LFW faces, and it "
        "cannot tell a hat from a fringe")
_BANGS = ("a fringe and a hat cover the forehead alike; pof scores how much of the forehead "
          "is covered (Obstructed Forehead) but not by what")
_FEW = ("too faint for the 200 x 280 crop's chin and lip regions to tell apart from a beard "
        "or clean skin, and too few labelled faces (under 5) to validate a measure")
_AGE = _EXPR = "face-api"
_REG = "regions"

A = Attribute
SCHEMA: tuple[Attribute, ...] = (
    # --- age group (perceived; setting `demographics`) -------------------------------------
    A("Baby", "age group", _AGE, "perceived age under 3 (estimate; face-api age head)"),
    A("Child", "age group", _AGE, "perceived age 3 to 12 (estimate)"),
    A("Youth", "age group", _AGE, "perceived age 13 to 29 (estimate)"),
    A("Middle Aged", "age group", _AGE, "perceived age 30 to 59 (estimate)"),
    A("Senior", "age group", _AGE, "perceived age 60 or over (estimate)"),
    # --- gender (perceived; setting `demographics`) ----------------------------------------
    A("Male", "gender", _AGE, "perceived gender: how male the face looks to face-api's gender head (estimate)"),
    # --- visual -----------------------------------------------------------------------------
    A("Black Hair", "visual", _REG, "black hair: dark (L*) hair just above the hairline (colour photos only)"),
    A("Blond Hair", "visual", _REG, "blond hair: light, saturated hair above the hairline (colour photos only)"),
    A("Brown Hair", "visual", _REG, "brown hair: hair of middle lightness above the hairline (colour photos only)"),
    A("Bald", "visual", _REG, "bald head: the crown matches the face's own skin (colour photos only)"),
    A("No Eyewear", "visual", "pixels", "no glasses: 1 - Eyeglasses (sunglasses are not detected)"),
    A("Eyeglasses", "visual", "pixels", "glasses: a frame's bar across the nose bridge between the eyes"),
    A("Sunglasses", "visual", None, "dark lenses",
      "eye-region darkness did not separate dark lenses from shaded eye sockets on the labelled "
      "set; no open model pof can ship scores it"),
    A("Mustache", "visual", _REG, "mustache: the upper lip less saturated than the face's own skin (colour photos only)"),
    A("Smiling", "visual", _EXPR, "smiling: face-api expression head, 'happy' probability"),
    A("Frowning", "visual", _EXPR, "frowning: face-api expression head, sad + angry + disgusted probability"),
    A("Chubby", "visual", None, "chubby face", _NO_MODEL),
    A("Blurry", "visual", "pixels", "blurred face: pof's blur measure (Laplacian variance of the crop)"),
    A("Harsh Lighting", "visual", "pixels", "hard light: strong shadows, one side of the face much darker"),
    A("Flash", "visual", None, "lit by a camera flash", _NO_MODEL),
    A("Soft Lighting", "visual", "pixels", "even, diffuse light: low shading contrast, sides balanced"),
    A("Outdoor", "visual", None, "photo taken outdoors", "the 200 x 280 crop shows too little scene; no model"),
    A("Curly Hair", "visual", None, "curly hair", _HAIR),
    A("Wavy Hair", "visual", None, "wavy hair", _HAIR),
    A("Straight Hair", "visual", None, "straight hair", _HAIR),
    A("Receding Hairline", "visual", None, "receding hairline", _HAIR),
    A("Bangs", "visual", None, "bangs (fringe)", _BANGS),
    A("Sideburns", "visual", None, "sideburns", _NO_MODEL),
    A("Fully Visible Forehead", "visual", _REG, "forehead fully visible: nearly all of it matches the face's own skin (colour photos only)"),
    A("Partially Visible Forehead", "visual", _REG, "forehead partly covered (colour photos only)"),
    A("Obstructed Forehead", "visual", _REG, "forehead covered by hair, a hat or a hand: much of it unlike the face's skin (colour photos only)"),
    A("Bushy Eyebrows", "visual", None, "bushy eyebrows", _NO_MODEL),
    A("Arched Eyebrows", "visual", None, "arched eyebrows", _NO_MODEL),
    A("Narrow Eyes", "visual", None, "narrow eyes", _PROXY),
    A("Eyes Open", "visual", "landmarks", "eyes open: eye aspect ratio of the 68 landmarks"),
    A("Big Nose", "visual", None, "big nose", _NO_MODEL),
    A("Pointy Nose", "visual", None, "pointy nose", _NO_MODEL),
    A("Big Lips", "visual", None, "big lips", _PROXY),
    A("Mouth Closed", "visual", "landmarks", "lips together: inner-lip gap of the 68 landmarks"),
    A("Mouth Slightly Open", "visual", "landmarks", "lips a little apart (inner-lip gap)"),
    A("Mouth Wide Open", "visual", "landmarks", "mouth wide open (inner-lip gap)"),
    A("Teeth Not Visible", "visual", "pixels", "no teeth showing: no bright pixels between the inner lips"),
    A("No Beard", "visual", _REG, "no beard: the chin as saturated as the face's own skin (colour photos only)"),
    A("Goatee", "visual", None, "goatee", _FEW),
    A("Round Jaw", "visual", None, "round jaw", _SHAPE),
    A("Double Chin", "visual", None, "double chin", _NO_MODEL),
    A("Wearing Hat", "visual", None, "hat or cap", _HAT),
    A("Oval Face", "visual", None, "oval face", _SHAPE),
    A("Square Face", "visual", None, "square face", _SHAPE),
    A("Round Face", "visual", None, "round face", _SHAPE),
    A("Color Photo", "visual", "pixels", "a colour (not grayscale or sepia) photo: chroma of the crop"),
    A("Posed Photo", "visual", None, "posed portrait", _NO_MODEL),
    A("Gray Hair", "visual", _REG, "gray or white hair: light, unsaturated hair above the hairline (colour photos only)"),
    A("Bags Under Eyes", "visual", None, "bags under the eyes", _NO_MODEL),
    A("Heavy Makeup", "visual", None, "heavy makeup", _NO_MODEL),
    A("Rosy Cheeks", "visual", None, "rosy cheeks", _PROXY),
    A("Shiny Skin", "visual", None, "shiny skin", _NO_MODEL),
    A("Pale Skin", "visual", None, "pale skin", _PROXY),
    A("5 o' Clock Shadow", "visual", None, "stubble", _FEW),
    A("Strong Nose-Mouth Lines", "visual", None, "strong nose-mouth lines", _NO_MODEL),
    A("Wearing Lipstick", "visual", None, "lipstick", _NO_MODEL),
    A("Flushed Face", "visual", None, "flushed face", _PROXY),
    A("High Cheekbones", "visual", None, "high cheekbones", _NO_MODEL),
    A("Brown Eyes", "visual", None, "brown eyes", _PROXY),
    A("Wearing Earrings", "visual", None, "earrings", _NO_MODEL),
    A("Wearing Necktie", "visual", None, "necktie", "the 200 x 280 crop rarely shows the neck; no model"),
    A("Wearing Necklace", "visual", None, "necklace", "the 200 x 280 crop rarely shows the neck; no model"),
)
del A

BY_NAME = {a.name: a for a in SCHEMA}
# Column order of attributes.csv: by task (age group, gender, visual), then schema order.
COLUMNS: tuple[str, ...] = tuple(a.name for t in TASKS for a in SCHEMA if a.task == t)
DEMOGRAPHIC = tuple(a.name for a in SCHEMA if a.task in ("age group", "gender"))
