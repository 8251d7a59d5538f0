"""memo.keep and memo.shown: what each view fills in of a kept fragment; memo.packed_cache:
a chart drawn once for its values, kept packed (issue 8)."""

from itertools import count

from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from infusion_tracker.memo import keep, new_marker, packed_cache, per_view, shown


def test_each_view_fills_in_its_own_values(app):
    values = count()
    with app.test_request_context():
        fragment = keep(lambda: ("", f"<p>{per_view(lambda: str(next(values)))}</p>"))
        assert [str(shown(fragment)) for _ in range(2)] == ["<p>0</p>", "<p>1</p>"]


def test_a_value_is_filled_in_wherever_it_was_drawn_among_any_text(app):
    """A value drawn twice (the CSRF token of every form on a page) is the same in both
    places, and each is put where it was drawn after text of any script (°, —, µ: more than
    a byte each)."""
    values = count()
    with app.test_request_context():

        def draw():
            key = per_view(lambda: f"k{next(values)}")
            token = generate_csrf()  # a marker while kept
            return "", f"<p>37.5 °C — {key} µg {token}</p><p>{key} · {token}</p>"

        fragment = keep(draw)
        token = generate_csrf()
        assert [str(shown(fragment)) for _ in range(2)] == [
            f"<p>37.5 °C — k0 µg {token}</p><p>k0 · {token}</p>",
            f"<p>37.5 °C — k1 µg {token}</p><p>k1 · {token}</p>",
        ]


def test_a_marker_not_of_this_drawing_is_left_as_it_was_drawn(app):
    stray = new_marker()
    with app.test_request_context():
        fragment = keep(lambda: ("", f"<p>{stray} {per_view(lambda: 'v')}</p>"))
        assert str(shown(fragment)) == f"<p>{stray} v</p>"


def test_a_fragment_kept_inside_another_keeps_each_view_s_values(app):
    """The readings table is kept on its own and drawn into the kept session page: a value of
    each view in the inner fragment stays each view's in the outer one."""
    values = count()
    with app.test_request_context():
        inner = keep(lambda: ("", f"<i>{per_view(lambda: str(next(values)))}</i>"))
        outer = keep(lambda: ("", f"<b>{shown(inner)}</b>"))
        assert [str(shown(outer)) for _ in range(2)] == ["<b><i>0</i></b>", "<b><i>1</i></b>"]


def test_a_packed_cache_draws_once_for_the_same_values_and_gives_back_the_same_markup():
    drawings = count(1)

    @packed_cache(2)
    def chart(value: int, name: str) -> Markup:
        return Markup("<svg><title>{} ({})</title>{}</svg>").format(
            name, next(drawings), Markup("<g/>") * value
        )

    first = chart(3, "Ana")
    assert isinstance(first, Markup)
    assert first == "<svg><title>Ana (1)</title><g/><g/><g/></svg>"
    assert chart(3, "Ana") == first  # kept, not drawn again
    assert chart(3, "Bo") == "<svg><title>Bo (2)</title><g/><g/><g/></svg>"
    chart(4, "Cy")  # a third: the least recently shown (Ana's) goes
    assert chart(3, "Ana") == "<svg><title>Ana (4)</title><g/><g/><g/></svg>"
    chart.cache_clear()
    assert chart(3, "Bo") == "<svg><title>Bo (5)</title><g/><g/><g/></svg>"
