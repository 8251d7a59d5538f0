"""Server-rendered SVG charts: no JavaScript, no library, no `style=` (the CSP blocks it).

Every chart is `<svg role="img">` with a <title> and a <desc> that says in words what the
picture shows, and prints in black and white: series differ by marker shape and dash, flags
by ring weight and a "!", never by colour alone.

Each chart module plans an immutable description (scales as values, plot boxes, positioned
marks) and renders it; svg.py holds the shared primitives.
"""

from .outcome import outcome_chart
from .peak import peak_rise_chart
from .svg import LinearScale, TimeScale
from .vitals import EventMark, VitalPoint, vitals_chart

__all__ = [
    "EventMark",
    "LinearScale",
    "TimeScale",
    "VitalPoint",
    "outcome_chart",
    "peak_rise_chart",
    "vitals_chart",
]
