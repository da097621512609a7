"""Errors a user can fix are PofError subclasses (the CLI prints them on one line with exit 2),
never plain ValueErrors that read as an internal error."""
from __future__ import annotations

import numpy as np
import pytest

from pof.errors import DatasetError, InstallError, PofError
from pof.matching.calibrate import calibrate
from pof.matching.verify import Verifier


def test_calibrating_without_impostors_says_what_to_do():
    """No impostor scores of its own (one person) and no reference scores for its descriptors:
    the gallery cannot be calibrated, and the error says to enrol another person."""
    with pytest.raises(DatasetError, match="enrol at least two persons"):
        calibrate(np.zeros(1, np.float32), persons=1, embedder="no-such-recognizer")


def test_missing_reference_scores_say_reinstall():
    with pytest.raises(InstallError, match="reinstall pof") as caught:
        Verifier(embedder="no-such-recognizer")
    assert isinstance(caught.value, PofError)
