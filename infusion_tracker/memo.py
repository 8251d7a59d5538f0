"""Drawn fragments a worker keeps: the last `size` keys, the least recently shown dropped first.

For a fragment whose key is cheap to make and whose drawing is not (the session page's
readings table): functools.lru_cache would need everything the drawing reads in its key."""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from flask import current_app
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

T = TypeVar("T")


def app_kept(name: str, make: Callable[[], T]) -> T:
    """The app's own `name` (current_app.extensions), made on first use: each app, and so each
    test's database, has its own."""
    kept = current_app.extensions.get(name)
    if kept is None:
        kept = current_app.extensions.setdefault(name, make())
    return kept


# Where a kept fragment's forms carry the CSRF token: filled in on each view (`shown`), since
# the token is the viewer's own and signed afresh every second. Markup, so no text in a
# fragment can spell it.
CSRF_SLOT = Markup("<csrf-token>")


def packed(html: str) -> bytes:
    """A drawn page or table as a worker keeps it: compressed, a tenth to a twentieth of the
    memory (HTML repeats itself), for some 40-80 µs to unpack on each view (bench/RESULTS.md,
    Stop 20: a hundred kept pages had taken worker memory past 150 MB)."""
    return zlib.compress(html.encode(), 6)


def shown(kept: bytes) -> Markup:
    """A packed fragment as this view shows it: unpacked, with this viewer's CSRF token."""
    # Only ever what `packed` took: HTML Jinja drew, every value in it escaped; and
    # Markup.replace escapes the token.
    fragment = Markup(zlib.decompress(kept).decode())  # noqa: S704
    return fragment.replace(CSRF_SLOT, generate_csrf())


class Memo(Generic[T]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()  # the development server answers in threads

    def get(
        self, key: Hashable, draw: Callable[[], T], fresh: Callable[[T], bool] | None = None
    ) -> T:
        """The fragment kept under `key`, or `draw()`, kept. `fresh`: whether a kept fragment
        still stands (one whose drawing the clock also decides)."""
        with self._lock:
            if key in self._kept and (fresh is None or fresh(self._kept[key])):
                self._kept.move_to_end(key)
                return self._kept[key]
        drawn = draw()
        with self._lock:
            self._kept[key] = drawn
            if len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return drawn

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
