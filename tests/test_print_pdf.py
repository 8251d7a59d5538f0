"""The printed session record in a real browser: Chromium prints /infusions/<id>/print to PDF
and the record must fit on one or two pages, with the patient header on every page.

The PDF and PNG renderings of its pages are kept under tmp_path and copied to /tmp/team/shots/
for people to look at."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infusion_tracker.extensions import db
from tests.browser_support import SHOTS, require
from tests.conftest import PASSWORD
from tests.test_review import full_session

pytestmark = pytest.mark.browser



def page_texts(pdf: Path) -> list[str]:
    pages = int(re.search(r"Pages:\s+(\d+)", run("pdfinfo", str(pdf))).group(1))
    return [
        run("pdftotext", "-layout", "-f", str(n), "-l", str(n), str(pdf), "-")
        for n in range(1, pages + 1)
    ]


def run(*command: str) -> str:
    # Fixed poppler tool names and paths this test made; no outside input.
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout  # noqa: S603


@pytest.mark.parametrize("paper", ["Letter", "A4"])
def test_record_prints_on_one_or_two_pages(
    app, live_server, browser_page, csp_errors, make_staff, make_infusion, tmp_path, paper
):
    require(bool(shutil.which("pdftoppm") and shutil.which("pdftotext")), "poppler-utils")

    infusion = full_session(make_staff, make_infusion, readings=20)
    reader = make_staff("np", username="printer")
    infusion_id, username = infusion.id, reader.username
    name = f"{infusion.patient.last_name.upper()}, {infusion.patient.first_name}"
    mrn = infusion.patient.mrn
    # End the test's own transaction: SQLite lets one writer at a time, and the server's
    # requests (login, the audit row) write.
    db.session.commit()

    pdf = tmp_path / f"record-{paper}.pdf"
    page = browser_page
    page.goto(f"{live_server}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/")
    response = page.goto(f"{live_server}/infusions/{infusion_id}/print")
    assert response.status == 200
    page.screenshot(path=str(tmp_path / f"record-screen-{paper}.png"), full_page=True)
    page.pdf(path=str(pdf), format=paper, print_background=True)

    texts = page_texts(pdf)
    run("pdftoppm", "-png", "-r", "80", str(pdf), str(tmp_path / f"record-{paper}"))
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for produced in tmp_path.glob("record-*"):
            shutil.copy(produced, SHOTS / f"print-{produced.name}")

    assert 1 <= len(texts) <= 2, f"{len(texts)} pages on {paper}"
    for number, text in enumerate(texts, start=1):
        # The patient header and the page count repeat on every page.
        assert name in text and mrn in text and "17 May 1980" in text, number
        assert f"Page {number} of {len(texts)}" in text, number
    whole = "\n".join(texts).lower()  # headings print in capitals
    for words in (
        "Pre-infusion checklist",
        "Readings",
        "Adverse events",
        "Assessments",
        "Discharge",
        "Electronically signed by",
        "Phoned next day",
        "Labetalol",
        "CRITICAL",
    ):
        assert words.lower() in whole, words
    assert "back to the session" not in whole and "print\n" not in whole  # screen-only controls
    assert csp_errors == []
