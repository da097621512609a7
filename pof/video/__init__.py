"""Videos: streaming frames (``reader``), following faces through them (``track``) and one
calibrated decision per face track (``search``)."""
