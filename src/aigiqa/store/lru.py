"""A small thread-safe LRU map for values that never go stale (the study store's caches)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class LruMap:
    """Up to ``size`` entries; the least recently used goes first. ``get`` gives None for a
    missing key (so None is never stored as a value)."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
