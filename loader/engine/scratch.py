"""Temporary views a batch's queries refer to, dropped when the batch is done.

A view holds its DataFrame's plan, and a checkpointed one its data: a long-running runner that
left them behind would keep every batch's data in memory.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_NUMBERS = itertools.count()


class Scratch:
    def __init__(self, session: SparkSession) -> None:
        self.session = session
        self._views: list[str] = []

    def view(self, frame: DataFrame, what: str) -> str:
        """Register ``frame`` under a new name; returns the name."""
        name = f"__tsa_{what}_{next(_NUMBERS)}"
        frame.createOrReplaceTempView(name)
        self._views.append(name)
        return name

    def bind(self, frame: DataFrame, name: str) -> None:
        """Register ``frame`` under ``name`` (the rules' ``cloudtrail``) until :meth:`drop`."""
        frame.createOrReplaceTempView(name)
        if name not in self._views:
            self._views.append(name)

    def drop(self) -> None:
        for name in self._views:
            self.session.catalog.dropTempView(name)
        self._views.clear()
