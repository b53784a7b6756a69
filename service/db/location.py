"""Which database a ``WISATA_DATA`` URL names, and the drivers that reach it (sync and async)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["Database", "is_database"]

_SCHEMES = ("sqlite", "postgresql", "postgres")
# One driver per database and mode: psycopg 3 for PostgreSQL (sync COPY and async), the standard
# library's sqlite3 for training reads and aiosqlite in the web process.
_SYNC = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}
_ASYNC = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}


def is_database(location: str) -> bool:
    """Whether ``location`` is a database URL rather than a folder."""
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    return scheme.split("+", 1)[0] in _SCHEMES


@dataclass(frozen=True)
class Database:
    """A database named by a URL: ``sqlite:///path`` or ``postgresql://user@host:port/name``."""

    url: URL
    kind: Literal["sqlite", "postgresql"]

    @classmethod
    def parse(cls, text: str) -> Database:
        """Read a database URL.

        Raises
        ------
        ValueError
            If it is not a SQLite or PostgreSQL URL; the message says what to write.
        """
        try:
            url = make_url(text)
        except ArgumentError as e:
            raise ValueError(f"{_safe(text)!r} is not a database URL ({e}); {_EXAMPLES}") from None
        backend = url.get_backend_name()
        if backend == "postgres":
            backend = "postgresql"
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{backend!r} databases are not supported; {_EXAMPLES}")
        if backend == "sqlite" and not url.database:
            raise ValueError(
                "a SQLite URL needs a file (an in-memory database would lose every rating); "
                "e.g. sqlite:///./data/wisata.db"
            )
        if backend == "postgresql" and not url.database:
            raise ValueError("a PostgreSQL URL needs a database name; " + _EXAMPLES)
        kind: Literal["sqlite", "postgresql"] = "sqlite" if backend == "sqlite" else "postgresql"
        return cls(url, kind)

    def sync_url(self) -> URL:
        """The URL with the driver training and the CLI use."""
        return self.url.set(drivername=_SYNC[self.kind])

    def async_url(self) -> URL:
        """The URL with the driver the web process uses (never blocks the event loop)."""
        return self.url.set(drivername=_ASYNC[self.kind])

    def describe(self) -> str:
        """The URL without its password, for logs and status pages."""
        return self.url.render_as_string(hide_password=True)


_EXAMPLES = "use sqlite:///path/to/wisata.db or postgresql://user:password@host:5432/wisata"


def _safe(text: str) -> str:
    # A URL that does not parse may still hold a password: show only up to the host part.
    scheme, _, rest = text.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if rest else text
