"""The app as a web server runs it: `gunicorn 'infusion_tracker.wsgi:app'`.

Without the CLI commands and the migrations (create_app(commands=False)): run
`flask --app infusion_tracker db upgrade` before starting it.
"""

import gc

from . import create_app

# Building the app makes objects that live as long as the process (modules, mappers, forms)
# and almost no garbage (641 objects): the collector's passes over them while they were made
# were a fifth of the start-up (0.96-1.07 -> 0.78-0.86 s to build it; bench/RESULTS.md,
# Stop 25), so it rests until the app is built.
gc.disable()
app = create_app(commands=False)
# What the app is built from is then frozen: the collector never walks it again. Its full
# passes (in one first view of a session page in 20 to 100) had walked all of it, 44-72 ms
# each, a pause in the tail of every page's response times; 0.5 ms now (bench/RESULTS.md,
# Stop 24). Under gunicorn --preload it also stays shared between the workers forked from
# here (a pass touching an object copies its memory page into a worker).
gc.freeze()
gc.enable()
