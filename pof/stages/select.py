"""Which face of a photo is its subject: the rules that pick one face among several.

A named photo enrolled by ``pof build`` must show its person as the largest face, and that face
must also be the one nearest the centre when others are about as large; ``pof verify`` compares
the largest face or the most central one (``SUBJECTS``, the convention of sets such as LFW,
whose photos are centred on the named person while a larger face may stand beside).
Coordinates are source pixels; boxes are (x, y, w, h).
"""
from __future__ import annotations

from pof.errors import PofError
from pof.record import Face

SUBJECTS = ("largest", "center")


def largest(faces: list[Face]) -> Face:
    """The face with the largest box (the subject of a portrait)."""
    return max(faces, key=lambda f: f.box[2] * f.box[3])


def off_centre(box, width: int, height: int) -> float:
    """Squared distance from the centre of ``box`` (x, y, w, h) to the centre of a ``width`` x
    ``height`` photo."""
    return (box[0] + box[2] / 2 - width / 2) ** 2 + (box[1] + box[3] / 2 - height / 2) ** 2


def central(faces: list[Face], width: int, height: int) -> Face:
    """The face whose box centre is nearest the centre of a ``width`` x ``height`` photo."""
    return min(faces, key=lambda f: off_centre(f.box, width, height))


def subject(faces: list[Face], rule: str, width: int, height: int) -> Face:
    """The face of a photo that verification compares, by ``rule`` (one of SUBJECTS)."""
    if rule == "largest":
        return largest(faces)
    if rule == "center":
        return central(faces, width, height)
    raise PofError(f"unknown subject rule {rule!r}; known: {', '.join(SUBJECTS)}")
