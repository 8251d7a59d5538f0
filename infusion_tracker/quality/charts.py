"""Horizontal bar charts for the quality report: server-side SVG, no `style=` (strict CSP),
`role="img"` with a <title> and a <desc> that says the figures in words. Bars built on fewer
than 5 patients are hatched and labelled, so the warning survives black-and-white print."""

from __future__ import annotations

import hashlib

from markupsafe import Markup, escape

INK = "#0b0c0c"
BAR = "#1d4f91"
GRID = "#d5d5d5"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"


def _attrs(**attrs) -> str:
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(str(value))}"'
        for name, value in attrs.items()
        if value is not None
    )


def _text(x: float, y: float, words: str, **attrs) -> str:
    return f"<text{_attrs(x=x, y=y, **attrs)}>{escape(words)}</text>"


def bar_chart(
    title: str,
    bars: list[tuple[str, float, bool]],
    *,
    unit: str,
    maximum: float | None = None,
    width: int = 640,
) -> Markup:
    """`bars` = [(label, value, built on fewer than 5 patients)], drawn top to bottom."""
    ident = "qchart-" + hashlib.sha1(title.encode(), usedforsecurity=False).hexdigest()[:8]
    if not bars:
        desc = "No data in this period."
    else:
        desc = "; ".join(
            f"{label}: {value:g} {unit}" + (" (fewer than 5 patients)" if thin else "")
            for label, value, thin in bars
        )
    row, top, label_w, right = 26, 10, 200, 170
    height = top + row * max(len(bars), 1) + 24
    hi = maximum or max([value for _, value, _ in bars] + [1])
    plot_w = width - label_w - right
    body = [
        '<defs><pattern id="' + ident + '-hatch" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" '
        f'stroke="{BAR}" stroke-width="3"/></pattern></defs>'
    ]
    axis_y = top + row * max(len(bars), 1)
    body.append(f"<line{_attrs(x1=label_w, y1=top, x2=label_w, y2=axis_y, stroke=INK)}/>")
    for index, (label, value, thin) in enumerate(bars):
        y = top + index * row
        length = round(plot_w * (value / hi), 1) if hi else 0
        fill = f"url(#{ident}-hatch)" if thin else BAR
        body.append(_text(label_w - 6, y + 17, label, text_anchor="end", fill=INK))
        box = _attrs(x=label_w, y=y + 4, width=max(length, 0), height=row - 8, fill=fill,
                     stroke=BAR)
        body.append(f"<rect{box}/>")
        note = f"{value:g} {unit}" + (" · < 5 patients" if thin else "")
        body.append(_text(label_w + max(length, 0) + 6, y + 17, note, fill=INK))
    if bars:
        body.append(_text(label_w, axis_y + 16, f"0 {unit}", fill=INK))
        body.append(_text(label_w + plot_w, axis_y + 16, f"{hi:g} {unit}", text_anchor="end",
                          fill=INK))
    else:
        body = [_text(8, top + 17, "No data in this period.", fill=INK)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="{escape(FONT)}" font-size="12" '
        f'class="chart-svg chart-svg--quality">'
    )
    # Every attribute and text above went through escape().
    return Markup(  # noqa: S704
        head
        + f'<title id="{ident}-title">{escape(title)}</title>'
        + f'<desc id="{ident}-desc">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )
