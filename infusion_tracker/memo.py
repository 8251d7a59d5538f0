"""Drawn fragments a worker keeps: the last `size` keys, the least recently shown dropped first.

For a fragment whose key is cheap to make and whose drawing is not (the session page's
readings table, the patient and session pages): functools.lru_cache would need everything
the drawing reads in its key."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Generic, TypeVar

import lz4.block
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
    """A drawn page or table as a worker keeps it: compressed, a quarter to a seventh of the
    memory (HTML repeats itself; bench/RESULTS.md, Stop 20: a hundred kept pages unpacked had
    taken worker memory past 150 MB). LZ4, not zlib: a session page at `chain` (106 KB) unpacks
    in about 10 µs, not 170, on each view it is shown, and packs in a seventh of the time, for
    a third more memory (Stop 28)."""
    return lz4.block.compress(html.encode())


def unpacked(data: bytes) -> bytes:
    """What `packed` took, as UTF-8."""
    return lz4.block.decompress(data)


def packed_cache(size: int) -> Callable[[Callable[..., Markup]], Callable[..., Markup]]:
    """functools.lru_cache for a function that draws markup from exactly its arguments (a
    chart's SVG), its last `size` results kept packed: a session's vitals chart is 42 KB of
    SVG (84 KB as a Python string, two bytes a character once one is not Latin-1), 6 KB
    packed; the charts' three memos held 10.8 MB of a worker that had shown 100 sessions and
    100 patients (bench/RESULTS.md, Stop 24)."""

    def decorate(draw: Callable[..., Markup]) -> Callable[..., Markup]:
        kept = lru_cache(maxsize=size)(lambda *args: packed(draw(*args)))

        @wraps(draw)
        def drawn_once(*args) -> Markup:
            # Only ever what `draw` returned: markup, every value in it escaped.
            return Markup(unpacked(kept(*args)).decode())  # noqa: S704

        drawn_once.cache_clear = kept.cache_clear  # type: ignore[attr-defined]
        return drawn_once

    return decorate


def digest(rows: list) -> str:
    """A page's fingerprint rows (what it shows, by what changes it) as one short key, the
    same whatever order the database returned them in."""
    text = json.dumps(sorted(tuple(row) for row in rows), separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# A marker: this worker's own random prefix, then a random part of the same length, so that one
# pattern built once finds every marker of a drawing (a pattern of the drawing's markers
# themselves, built each time, cost more than the drawing's search).
_MARKER_PREFIX = secrets.token_hex(8)
MARKER_BYTES = 32
_MARKERS = re.compile(re.escape(_MARKER_PREFIX.encode()) + rb"[0-9a-f]{16}")


def new_marker() -> str:
    """A place in a drawing being kept that each view fills in with its own value."""
    return _MARKER_PREFIX + secrets.token_hex(8)


def per_view(make: Callable[[], str]) -> str:
    """A value every view has its own of (a form's submission key, the time the page was
    opened): `make()`; while a fragment is drawn to be kept (`keep`), a marker that each view
    fills in with its own `make()`."""
    fills = g.get("kept_fills")
    if fills is None:
        return make()
    marker = new_marker()
    fills.append((marker, make))
    return marker


@dataclass(frozen=True)
class Kept:
    title: str  # a page's (no per-view value in it); "" for a fragment
    html: bytes  # packed, each view's values as their markers
    fills: tuple[Callable[[], str], ...]  # what fills in each marker on each view
    cuts: tuple[tuple[int, int], ...]  # (where a marker is in the UTF-8 html, its fill)


def keep(draw: Callable[[], tuple[str, str]]) -> Kept:
    """The (title, html) `draw()` makes, as a worker keeps it: every value in the html that is
    each view's own drawn as a marker, the CSRF token (every form's, and csrf_token()'s) and
    each `per_view` value. The markers are random and never leave the server, so no text on a
    page can spell one."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    csrf = new_marker()
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
    # Where each marker was drawn, found once: a view puts its values there rather than
    # searching the whole page for each marker (three searches of a session page at `chain`
    # took 130 µs). Only the markers drawn: a fragment without a form leaves its token to the
    # page's layout.
    index = {marker.encode(): n for n, (marker, _) in enumerate(fills)}
    found = _MARKERS.finditer(html.encode())
    cuts = tuple((match.start(), index[match[0]]) for match in found if match[0] in index)
    return Kept(title, packed(html), tuple(make for _, make in fills), cuts)


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
    html = memoryview(unpacked(fragment.html))
    values = {}
    pieces = []
    start = 0
    for at, fill in fragment.cuts:
        if fill not in values:
            values[fill] = per_view(fragment.fills[fill]).encode()
        pieces += (html[start:at], values[fill])
        start = at + MARKER_BYTES
    pieces.append(html[start:])
    # Only ever what `keep` took: HTML Jinja drew, every value in it escaped.
    return Markup(b"".join(pieces).decode())  # noqa: S704


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
