import httpx


def test_healthz_answers_ok_once_the_database_is_reachable(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_503_in_the_error_shape_without_a_database(start_server):
    server = start_server(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = httpx.get(f"{server.url}/healthz", timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
