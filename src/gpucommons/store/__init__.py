"""The database: ORM rows, repositories that flush but never commit, and Alembic migrations."""
