"""Kept so `from api.auth import Reader` goes on working: the roles are in api/deps.py."""

from api.deps import ANONYMOUS_ADMIN, Admin, Auditor, Reader, Writer, recorded_by, require

__all__ = ["ANONYMOUS_ADMIN", "Admin", "Auditor", "Reader", "Writer", "recorded_by", "require"]
