"""Comparing faces: galleries and open-set search (``search``), thresholds from impostor
scores (``calibrate``), one-to-one verification (``verify``) and grouping unnamed faces
(``cluster``). Every decision here is a candidate with a stated error rate, never a verdict."""
