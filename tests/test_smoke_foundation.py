from tests.conftest import PASSWORD


def test_setup_then_login_lands_admin_on_staff_list(client, app):
    assert client.get("/login").status_code == 302  # no account yet -> /setup
    page = client.get("/setup")
    assert b"Create the first administrator" in page.data
    response = client.post(
        "/setup",
        data={
            "username": "Office",
            "full_name": "Olive Manager",
            "credentials": "MBA",
            "new_password": PASSWORD,
            "confirm_password": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert client.get("/setup").status_code == 404
    response = client.post("/login", data={"username": "OFFICE", "password": PASSWORD})
    assert response.headers["Location"] == "/admin/staff/"
    page = client.get("/admin/staff/")
    assert b"Olive Manager, MBA" in page.data
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
