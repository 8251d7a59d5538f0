"""memo.keep and memo.shown: what each view fills in of a kept fragment (issue 8)."""

from itertools import count

from infusion_tracker.memo import keep, per_view, shown


def test_each_view_fills_in_its_own_values(app):
    values = count()
    with app.test_request_context():
        fragment = keep(lambda: ("", f"<p>{per_view(lambda: str(next(values)))}</p>"))
        assert [str(shown(fragment)) for _ in range(2)] == ["<p>0</p>", "<p>1</p>"]


def test_a_fragment_kept_inside_another_keeps_each_view_s_values(app):
    """The readings table is kept on its own and drawn into the kept session page: a value of
    each view in the inner fragment stays each view's in the outer one."""
    values = count()
    with app.test_request_context():
        inner = keep(lambda: ("", f"<i>{per_view(lambda: str(next(values)))}</i>"))
        outer = keep(lambda: ("", f"<b>{shown(inner)}</b>"))
        assert [str(shown(outer)) for _ in range(2)] == ["<b><i>0</i></b>", "<b><i>1</i></b>"]
