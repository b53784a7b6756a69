"""The embedded demo dataset: a hand-written catalogue and its generated ratings.

``items.csv`` lists about sixty real Indonesian destinations and ``ratings.csv`` holds seeded
synthetic ratings with category and city taste structure; ``generate.py`` rewrites the latter and
``README.md`` documents both.
"""

from pathlib import Path

__all__ = ["SAMPLE_DATA_DIR"]

SAMPLE_DATA_DIR: Path = Path(__file__).resolve().parent
"""The folder holding ``items.csv`` and ``ratings.csv``."""
