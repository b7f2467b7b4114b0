"""Database readers: each reads a folder exactly as its authors release it."""

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.registry import (
    check_image_files,
    list_databases,
    load_database,
    register_database,
    validate_database,
)

__all__ = [
    "Database",
    "DatabaseInfo",
    "Record",
    "check_image_files",
    "list_databases",
    "load_database",
    "register_database",
    "validate_database",
]
