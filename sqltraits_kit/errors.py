"""The kit's error types: each one is a message a user can act on, never a traceback to decode.

The CLI prints ``str(error)`` and exits :data:`EXIT_USAGE` (2) for :class:`ConfigError`
(usage/configuration) and :data:`EXIT_FAILED` (1) for any other :class:`SqlTraitsError`; the app
shows it with ``st.error``.
"""

from __future__ import annotations

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "SqlTraitsError",
    "UnknownTableError",
    "WarehouseConnectionError",
    "WarehouseLockedError",
]


#: The CLI's exit statuses: done; failed (rows not delivered, a data error); usage/configuration
#: error or a refused gate, which needs a person to look.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class SqlTraitsError(Exception):
    """Base class: something the user can fix, explained in the message."""


class ConfigError(SqlTraitsError):
    """A setting, argument or file is wrong (CLI exit status 2)."""


class WarehouseConnectionError(ConfigError):
    """The warehouse URL is wrong or the warehouse does not answer."""


class WarehouseLockedError(WarehouseConnectionError):
    """Another process holds the DuckDB file's write lock."""


class UnknownTableError(ConfigError):
    """A table or column named by the user is not there."""


class DataError(SqlTraitsError):
    """The data breaks a rule; the message names the row or column."""


class ModelLoadError(SqlTraitsError):
    """A model artifact is missing, tampered with, or holds types we do not trust."""
