"""The web app of ``pof serve``: search, review, gallery, unknown faces, accounts, audit.

Build it with ``create_app(DATASET)`` (``pof.web.app``); it is a FastAPI application whose
store is the dataset's SQLite catalog.
"""
