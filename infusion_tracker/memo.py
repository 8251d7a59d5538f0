"""Drawn fragments a worker keeps: the last `size` keys, the least recently shown dropped first.

For a fragment whose key is cheap to make and whose drawing is not (the session page's
readings table, the patient and session pages): functools.lru_cache would need everything
the drawing reads in its key."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Generic, TypeVar

from flask import current_app, g
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


def packed(html: str) -> bytes:
    """A drawn page or table as a worker keeps it: compressed, a sixth to a fifteenth of the
    memory (HTML repeats itself), for some 40-80 µs to unpack on each view (bench/RESULTS.md,
    Stop 20: a hundred kept pages had taken worker memory past 150 MB). Zlib's fastest level:
    its default took 0.44 ms of a session page's first view where this takes 0.18, for a
    fifth less memory (Stop 24)."""
    return zlib.compress(html.encode(), 1)


def packed_cache(size: int) -> Callable[[Callable[..., Markup]], Callable[..., Markup]]:
    """functools.lru_cache for a function that draws markup from exactly its arguments (a
    chart's SVG), its last `size` results kept packed: a session's vitals chart is 42 KB of
    SVG (84 KB as a Python string, two bytes a character once one is not Latin-1), 6 KB
    packed; the charts' three memos held 10.8 MB of a worker that had shown 100 sessions and
    100 patients (bench/RESULTS.md, Stop 24)."""

    def decorate(draw: Callable[..., Markup]) -> Callable[..., Markup]:
        kept = lru_cache(maxsize=size)(lambda *args: packed(draw(*args)))

        @wraps(draw)
        def unpacked(*args) -> Markup:
            # Only ever what `draw` returned: markup, every value in it escaped.
            return Markup(zlib.decompress(kept(*args)).decode())  # noqa: S704

        unpacked.cache_clear = kept.cache_clear  # type: ignore[attr-defined]
        return unpacked

    return decorate


def digest(rows: list) -> str:
    """A page's fingerprint rows (what it shows, by what changes it) as one short key, the
    same whatever order the database returned them in."""
    text = json.dumps(sorted(tuple(row) for row in rows), separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def per_view(make: Callable[[], str]) -> str:
    """A value every view has its own of (a form's submission key, the time the page was
    opened): `make()`; while a fragment is drawn to be kept (`keep`), a marker that each view
    fills in with its own `make()`."""
    fills = g.get("kept_fills")
    if fills is None:
        return make()
    marker = secrets.token_hex(16)
    fills.append((marker, make))
    return marker


@dataclass(frozen=True)
class Kept:
    title: str  # a page's (no per-view value in it); "" for a fragment
    html: bytes  # packed
    fills: tuple[tuple[str, Callable[[], str]], ...]  # (marker, what fills it in on each view)


def keep(draw: Callable[[], tuple[str, str]]) -> Kept:
    """The (title, html) `draw()` makes, as a worker keeps it: every value in the html that is
    each view's own drawn as a marker, the CSRF token (every form's, and csrf_token()'s) and
    each `per_view` value. The markers are random and never leave the server, so no text on a
    page can spell one."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    csrf = secrets.token_hex(16)
    fills = [(csrf, generate_csrf)]
    # A kept fragment may be drawn inside another (the readings table in the session page):
    # the outer drawing's token and markers are put back after the inner one.
    outer = {name: g.pop(name) for name in (field, "kept_fills") if name in g}
    setattr(g, field, csrf)  # what flask_wtf's generate_csrf returns for this request
    g.kept_fills = fills
    try:
        title, html = draw()
    finally:
        g.pop(field)
        g.pop("kept_fills")
        for name, value in outer.items():
            setattr(g, name, value)
    # Only the markers drawn: a fragment without a form leaves its token to the page's layout.
    return Kept(title, packed(html), tuple(fill for fill in fills if fill[0] in html))


def kept(name: str, key: Hashable, draw: Callable[[], tuple[str, str]], size: int) -> Kept:
    """The (title, html) `draw()` makes, kept under `key` among the app's `size` last of
    `name`: `key` must change with everything the html shows."""
    drawn = app_kept(name, lambda: Memo[Kept](size))
    return drawn.get(key, lambda: keep(draw))


def drawn(name: str, key: Hashable, draw: Callable[[], str], size: int = 128) -> Markup:
    """A fragment (a table of results, say) kept under `key`, as this view shows it. For a
    fragment whose key is its content (the rows it lists), cheap to read, while drawing them
    is not (a link, a tag, a formatted time and the escaping of each value of each row)."""
    return shown(kept(name, key, lambda: ("", draw()), size))


def shown(fragment: Kept) -> Markup:
    """A kept fragment as this view shows it: unpacked, each marker filled in for this view
    (shown inside another drawing being kept, a marker of that drawing: per_view)."""
    # Only ever what `keep` took: HTML Jinja drew, every value in it escaped.
    html = zlib.decompress(fragment.html).decode()
    for marker, make in fragment.fills:
        html = html.replace(marker, per_view(make))
    return Markup(html)  # noqa: S704


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
