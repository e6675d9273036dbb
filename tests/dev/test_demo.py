"""The demo org of `herald dev`: made once with varied data, found again on every later run."""

from __future__ import annotations

from sqlalchemy import func, select

from herald.crm.models import DEFAULT_STATUSES, Contact
from herald.db import unit_of_work
from herald.dev.demo import BOUNCING, CONTACT_COUNT, ensure_demo
from herald.mailconfig.service import get_config
from herald.marketing.models import Campaign


def demo(runtime, dev_dir, smtp_port=2525):
    with unit_of_work(runtime.sessions) as session:
        return ensure_demo(session, runtime.settings, dev_dir, smtp_port)


def log_in(client, email, password):
    return client.post("/api/auth/login", json={"email": email, "password": password})


def test_demo_org_has_varied_contacts_drafts_and_the_catcher(runtime, tmp_path, client):
    login = demo(runtime, tmp_path, smtp_port=2525)
    for email in (login.admin_email, login.manager_email):
        answer = log_in(client, email, login.password)
        assert answer.status_code == 200, answer.text
    assert log_in(client, login.manager_email, login.password).json()["user"]["role"] == "MANAGER"

    with unit_of_work(runtime.sessions) as session:
        contacts = session.scalars(select(Contact).where(Contact.org_id == login.org_id)).all()
        config = get_config(session, login.org_id)
        campaigns = session.scalars(
            select(Campaign.name).where(Campaign.org_id == login.org_id)
        ).all()
    assert 150 <= len(contacts) <= 250
    assert {c.status for c in contacts} == set(DEFAULT_STATUSES)
    assert any(c.marketing_opt_out for c in contacts)
    assert any(c.email is None for c in contacts)
    assert any(not (c.first_name or "").isascii() for c in contacts)
    assert config is not None and (config.host, config.port) == ("127.0.0.1", 2525)
    assert config.bounce_address  # the catcher's reports come back to it
    assert set(BOUNCING) <= {c.email for c in contacts}
    # (made as drafts; another test of the same database may have launched one since)
    assert {"Welcome to Herald", "Customers only: autumn news"} <= set(campaigns)


def test_a_second_run_reuses_everything_and_follows_the_catcher_port(runtime, tmp_path, client):
    first = demo(runtime, tmp_path, smtp_port=2525)
    again = demo(runtime, tmp_path, smtp_port=2626)
    assert not again.created
    assert (again.org_id, again.password) == (first.org_id, first.password)
    with unit_of_work(runtime.sessions) as session:
        count = session.scalar(
            select(func.count()).select_from(Contact).where(Contact.org_id == first.org_id)
        )
        config = get_config(session, first.org_id)
    assert count == CONTACT_COUNT + len(BOUNCING)
    assert config is not None and config.port == 2626
    assert log_in(client, again.admin_email, again.password).status_code == 200


def test_a_lost_login_file_gives_a_new_password_that_works(runtime, tmp_path, client):
    first = demo(runtime, tmp_path)
    (tmp_path / "demo-login.json").unlink()
    again = demo(runtime, tmp_path)
    assert again.org_id == first.org_id and again.password != first.password
    assert log_in(client, again.admin_email, first.password).status_code == 401
    assert log_in(client, again.admin_email, again.password).status_code == 200


def test_outside_dev_mode_there_is_no_inbox(runtime, tmp_path, client):
    login = demo(runtime, tmp_path)
    token = log_in(client, login.admin_email, login.password).json()["accessToken"]
    client.cookies.set("herald_access", token)
    home = client.get("/marketing")
    assert home.status_code == 200 and "/dev/inbox" not in home.text
    assert client.get("/dev/inbox").status_code == 404
