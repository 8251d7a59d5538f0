"""The app as a web server runs it: `gunicorn 'infusion_tracker.wsgi:app'`.

Without the CLI commands and the migrations (create_app(commands=False)): run
`flask --app infusion_tracker db upgrade` before starting it.
"""

import gc

from . import create_app

# A page drawn afresh makes tens of thousands of objects (rows, markup, strings) that live
# until its answer is sent, so the collector's default (a pass every 700 more, and every tenth
# and hundredth pass a deeper one, the deepest walking every object the app is built from)
# cost the session page's first view 3.2 ms in all, a fifth of it (bench/RESULTS.md,
# Stop 24). Cycles are still collected, only less often.
GC_THRESHOLDS = (20_000, 20, 20)

app = create_app(commands=False)
# What the app is built from lives as long as the process: out of the collector's sight, and,
# under gunicorn --preload, left shared between the workers forked from here (a collection
# touching an object copies its memory page into the worker).
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)
