"""Measuring pof on labelled photos: the metrics of open-set identification and verification
(``metrics``: FNIR/FPIR, DIR, ROC, DET, CMC), the runs behind ``pof eval`` (``run``) and their
pictures (``plots``)."""
