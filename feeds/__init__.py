"""Nashra: an RSS/Atom aggregator and publisher for Arabic-first, right-to-left news."""

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")

__version__ = "0.1.0"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # every process's, alike


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last shorter): itertools.batched before Python 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
