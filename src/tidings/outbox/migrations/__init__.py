"""Alembic migrations of the outbox and inbox tables: a version location on its own branch,
labelled ``tidings`` (see `tidings.outbox.MIGRATIONS`). Alembic reads the revision files;
nothing imports this package."""
