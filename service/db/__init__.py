"""The site's database: the schema Wisata owns, bulk reads and writes, and the ratings API's store.

A dataset source is a folder or a database URL (``sqlite:///path``, ``postgresql://...``);
:func:`is_database` tells which. The schema is SQLAlchemy Core (:mod:`service.db.schema`);
training reads it in bulk (:mod:`service.db.bulk`), the web process writes and reads ratings
through an async driver (:mod:`service.db.ratings`).
"""

from service.db.location import Database, is_database

__all__ = ["Database", "is_database"]
