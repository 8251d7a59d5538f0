"""The header every page opens with, kept drawn under what it shows (templating.site_header):
each view's header is still that view's — the review queue's count, the page marked as
current, who is signed in, and a Sign out form carrying this view's token."""

import re

import pytest

from infusion_tracker.extensions import db
from tests.conftest import PASSWORD, csrf_token_from
from tests.test_review import discharged_session, sign_directly


def header(html: str) -> str:
    return html[html.index('<header class="site-header">') : html.index("</header>")]


def current_entry(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)" aria-current="page">', header(html))


def test_the_review_count_follows_the_queue(client, login_as, make_staff, make_infusion):
    login_as("physician")
    waiting = [discharged_session(make_infusion) for _ in range(3)]
    assert 'aria-label="3 waiting">3</span>' in header(client.get("/").get_data(as_text=True))
    sign_directly(waiting[0], make_staff("physician"))
    html = client.get("/").get_data(as_text=True)
    assert 'aria-label="2 waiting">2</span>' in header(html)
    assert "3 waiting" not in html


def test_the_page_shown_is_the_one_marked_current(client, login_as):
    login_as("physician")
    assert current_entry(client.get("/review/").get_data(as_text=True)) == ["/review/"]
    assert current_entry(client.get("/patients/").get_data(as_text=True)) == ["/patients/"]
    assert current_entry(client.get("/review/").get_data(as_text=True)) == ["/review/"]
    # A page the navigation does not list marks none.
    assert current_entry(client.get("/account/password").get_data(as_text=True)) == []


def test_a_changed_name_is_shown_on_the_next_page(client, login_as):
    staff = login_as("np", full_name="Jo Roe", credentials="APRN")
    assert "Jo Roe, APRN" in header(client.get("/").get_data(as_text=True))
    staff.full_name = "Jo Roe-Park"
    db.session.commit()
    html = header(client.get("/").get_data(as_text=True))
    assert "Jo Roe-Park, APRN" in html and "Jo Roe," not in html


def test_signed_out_pages_have_no_navigation(client, login_as):
    login_as("np")
    assert "site-nav" in header(client.get("/").get_data(as_text=True))
    client.post("/logout")
    html = header(client.get("/login").get_data(as_text=True))
    assert 'href="/login"' in html and "site-nav" not in html and "Sign out" not in html


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_sign_out_carries_this_view_s_token(client, make_staff):
    staff = make_staff("np")
    tokens = []
    for _ in range(2):  # a new sign-in, a new token
        html = client.get("/login").get_data(as_text=True)
        client.post(
            "/login",
            data={"csrf_token": csrf_token_from(html), "username": staff.username,
                  "password": PASSWORD},
        )
        page = client.get("/").get_data(as_text=True)
        token = csrf_token_from(header(page))
        # The token the page's own scripts use, not a marker kept with the header.
        assert token == re.search(r'data-csrf-token="([^"]+)"', page).group(1)
        assert client.post("/logout", data={"csrf_token": token}).status_code == 302
        assert client.get("/").headers["Location"].startswith("/login")
        tokens.append(token)
    assert tokens[0] != tokens[1]
