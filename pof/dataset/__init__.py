"""The POF dataset on disk: where sources come from (``sources``), the build that analyses
them (``build``), the SQLite catalog (``catalog``), the published layout (``export``), the
descriptor index (``index``), the one-writer lock (``lock``) and the consistency check
(``fsck``)."""
