"""PostgreSQL: the only package that imports asyncpg."""

from server.db.core import Database, QueueRow, migration_files

__all__ = ["Database", "QueueRow", "migration_files"]
