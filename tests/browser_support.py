"""Shared pieces of the browser tests: the app on a real HTTP server, a Chromium page at the
bedside tablet's 1024×768 with the console's Content-Security-Policy refusals and script errors
collected, and small helpers (sign in, screenshots the team can look at).

conftest.py loads this module as a pytest plugin, so its fixtures (live_server, browser_page,
csp_errors, script_errors, dialogs) are available to every test by name.
"""

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium, not a Playwright download
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1024, "height": 768}  # the bedside tablet
# Set SHOTS_DIR to also collect every screenshot in one folder to look at; by default they
# stay under each test's tmp_path only.
SHOTS = Path(os.environ["SHOTS_DIR"]) if os.environ.get("SHOTS_DIR") else None
IN_CI = os.environ.get("CI") == "true"


def require(tool_present: bool, what: str) -> None:
    """Skip when a tool the browser tests need is missing; in CI that is a failure."""
    if not tool_present:
        if IN_CI:
            pytest.fail(f"{what} is missing; CI must install it")
        pytest.skip(f"{what} is missing (install it to run the browser tests)")


@pytest.fixture
def live_server(app):
    """The app on a real HTTP server in a thread (the database is the test's own)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def csp_errors() -> list[str]:
    """Console messages in which the browser refused something under the CSP."""
    return []


@pytest.fixture
def script_errors() -> list[str]:
    """Uncaught script errors on the pages visited."""
    return []


@pytest.fixture
def dialogs() -> list[str]:
    """Confirmation dialogs shown (and accepted, as the person at the bedside would)."""
    return []


@pytest.fixture
def browser_page(live_server, csp_errors, script_errors, dialogs):
    """A Chromium page at 1024×768. launch() gives a fresh temporary profile each time.

    It depends on live_server so that the browser closes before the server stops."""
    require(Path(CHROMIUM).exists(), CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on(
                "console",
                lambda message: (
                    "Content Security Policy" in message.text and csp_errors.append(message.text)
                ),
            )
            page.on("pageerror", lambda error: script_errors.append(str(error)))

            def confirm(dialog):
                dialogs.append(dialog.message)
                dialog.accept()

            page.on("dialog", confirm)
            yield page
        finally:
            browser.close()


def sign_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form and wait for the page it leads to."""
    page.goto(f"{base_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def sign_out(page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


def shoot(page, directory: Path, name: str, full_page: bool = False) -> Path:
    """A screenshot under the test's tmp_path (copied to SHOTS_DIR when that is set)."""
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
    return path
