"""Library versions: those a pickled model depends on, as running now and as an artifact recorded.

A payload unpickles faithfully only under the libraries it was pickled with, so an artifact records
their versions and :func:`check_versions` compares them with the running ones before loading.
"""

import logging
import platform
import re
from collections.abc import Mapping

import cloudpickle
import numpy
import scipy
import sklearn

from service.errors import IncompatibleVersions

__all__ = [
    "LIBRARIES",
    "REQUIRED_LIBRARIES",
    "VERSION_NUMBER",
    "check_versions",
    "library_versions",
]

logger = logging.getLogger(__name__)

#: The libraries whose versions an artifact records, Python first.
LIBRARIES = ("python", "numpy", "scipy", "scikit-learn", "cloudpickle")
#: The ones a header must name: without them no check of what matters can be made.
REQUIRED_LIBRARIES = ("python", "numpy", "scikit-learn", "cloudpickle")
#: The start of every recorded version: its major and minor number.
VERSION_NUMBER = re.compile(r"(\d+)\.(\d+)")
# Their pickles change between major versions; the others' rarely break, so they only warn.
_MAJOR_MUST_MATCH = ("numpy", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Return the versions of Python and of the libraries a pickled model depends on.

    Returns
    -------
    dict of str to str
        One version per name of :data:`LIBRARIES`.
    """
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": str(scipy.__version__),
        "scikit-learn": str(sklearn.__version__),
        "cloudpickle": str(cloudpickle.__version__),
    }


def check_versions(model: str, recorded: Mapping[str, str]) -> None:
    """Refuse a model pickled under another major numpy or scikit-learn; log other differences.

    Parameters
    ----------
    model : str
        The model's name, for the messages.
    recorded : mapping of str to str
        The versions its artifact recorded, by library name.

    Raises
    ------
    IncompatibleVersions
        If numpy or scikit-learn differ in major version from the running ones.
    """
    running = library_versions()
    for lib in LIBRARIES:
        then, now = recorded.get(lib), running[lib]
        if then is None or _major_minor(then) == _major_minor(now):
            continue
        if lib in _MAJOR_MUST_MATCH and _major_minor(then)[0] != _major_minor(now)[0]:
            raise IncompatibleVersions(
                f"artifact {model!r} was written with {lib} {then} but {now} is "
                f"installed: retrain it with {lib} {now}, or install {lib} {then}"
            )
        logger.warning(
            "artifact %r was written with %s %s but %s is installed; loading it anyway",
            model,
            lib,
            then,
            now,
        )


def _major_minor(version: str) -> tuple[int, int]:
    match = VERSION_NUMBER.match(version)
    return (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
