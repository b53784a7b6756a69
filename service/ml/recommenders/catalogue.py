"""The catalogue a fitted model carries: item ids and the fields a response shows for each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from service.errors import UnknownItemError

__all__ = ["Catalogue"]


@dataclass(frozen=True, eq=False)
class Catalogue:
    """The fields a response shows for each item, so a model can serve without the dataset."""

    ids: pd.Index
    names: npt.NDArray[np.object_]
    categories: list[list[str]]
    cities: npt.NDArray[np.object_]
    _positions: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {key: i for i, key in enumerate(self.ids)})

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> Catalogue:
        return cls(
            ids=pd.Index(items["id"].astype(str), dtype=object),
            names=items["name"].astype(str).to_numpy(dtype=object),
            categories=[list(c) for c in items["categories"]],
            cities=items["city"].fillna("").astype(str).to_numpy(dtype=object),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_positions", None)  # rebuilt on load: cheaper than storing it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def contains(self, item_id: str) -> bool:
        """Whether ``item_id`` is in the catalogue."""
        return item_id in self._positions

    def position(self, item_id: str) -> int:
        """Return the row of ``item_id``; raise :class:`UnknownItemError` when absent."""
        try:
            return self._positions[item_id]
        except KeyError:
            raise UnknownItemError(item_id) from None

    def describe(self, item_id: str) -> dict[str, Any]:
        """Return ``{id, name, categories, city}`` for one item."""
        row = self.position(item_id)
        return {
            "id": item_id,
            "name": self.names[row],
            "categories": list(self.categories[row]),
            "city": self.cities[row] or None,
        }
