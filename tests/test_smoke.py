from tests.orgs.factories import login, make_org, make_user


def test_login_and_me(client, runtime):
    org = make_org(runtime)
    user = make_user(runtime, org, "ADMIN", mfa=True)
    headers = login(client, user)
    me = client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == user.email


def test_unknown_route_has_error_shape(client):
    r = client.get("/api/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
