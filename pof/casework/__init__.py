"""The people side of an investigation: accounts and roles (``accounts``), the hash-chained
audit log (``audit``) and the review of proposed names by other people (``review``). The web
app and the command line use these; nothing below them does."""
