"""Persistence behind one small interface: SQLAlchemy Core, SQLite (WAL) by default."""

from storage.schema import SCHEMA_VERSION
from storage.store import SaveResult, Storage, StorageError

__all__ = ["SCHEMA_VERSION", "SaveResult", "Storage", "StorageError"]
