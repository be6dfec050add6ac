"""The web app's console and sign-in APIs on a real server with authentication on: an account's own keys and the
price list, passwords set by the CLI and the admin API, sign-in keys used by the openai SDK, logout, expiry, and
the per-email limit on failed sign-ins."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from .server import RunningServer

PREFIXES = ("/v1", "/api/paas/v4")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(
        log=tmp_path_factory.mktemp("console") / "server.log",
        env={"OPENGLM_AUTH": "on", "OPENGLM_SANDBOX_WARM": "0"},
    )
    yield running
    running.stop()


ADMIN_KEYS: dict[str, str] = {}


def admin_key(server: RunningServer) -> str:
    """One admin key per server, made with the CLI."""
    if server.url not in ADMIN_KEYS:
        ADMIN_KEYS[server.url] = server.cli("keys", "create", "--admin").strip()
    return ADMIN_KEYS[server.url]


def account_key(server: RunningServer, account: str) -> str:
    """A new user key of ``account`` (created if new), through the admin API."""
    admin = httpx.Client(base_url=f"{server.url}/admin", headers=as_key(admin_key(server)))
    admin.post("/accounts", json={"name": account, "grant": "10"})  # 400 when it exists already
    created = admin.post(f"/accounts/{account}/keys", json={"name": "test"})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def set_password(server: RunningServer, account: str, email: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openglm", "accounts", "set-password", account, email],
        input=password + "\n",
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def models_work(server: RunningServer, key: str) -> bool:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    try:
        return bool(client.models.list().data)
    except openai.AuthenticationError:
        return False


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def login(server: RunningServer, email: str, password: str, prefix: str = "/v1") -> httpx.Response:
    return httpx.post(f"{server.url}{prefix}/auth/login", json={"email": email, "password": password}, timeout=30)


# --- keys and prices --------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_an_account_manages_its_own_keys(console: RunningServer, prefix: str) -> None:
    key = account_key(console, "keys-co")
    api = httpx.Client(base_url=f"{console.url}{prefix}", headers=as_key(key))
    created = api.post("/account/keys", json={"name": "laptop"})
    assert created.status_code == 200, created.text
    new = created.json()
    assert new["name"] == "laptop" and new["disabled"] is False and new["key"].startswith(new["id"] + ".")
    assert models_work(console, new["key"])
    listed = api.get("/account/keys")
    assert listed.status_code == 200
    rows = {row["id"]: row for row in listed.json()["data"]}
    assert {key.split(".")[0], new["id"]} <= set(rows)
    assert set(rows[new["id"]]) >= {"id", "name", "disabled", "created_at", "expires_at", "last_used_at"}
    secret = new["key"].split(".")[1]
    assert "key" not in rows[new["id"]] and secret not in listed.text  # never a secret again
    disabled = api.patch(f"/account/keys/{new['id']}", json={"disabled": True, "name": "old laptop"})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert disabled.json()["name"] == "old laptop"
    assert code(httpx.get(f"{console.url}/v1/models", headers=as_key(new["key"]))) == "1004"
    enabled = api.patch(f"/account/keys/{new['id']}", json={"disabled": False})
    assert enabled.status_code == 403 and code(enabled) == "1220" and "operator" in enabled.json()["error"]["message"]
    assert not models_work(console, new["key"])  # an operator enables it, or a new key is made
    deleted = api.delete(f"/account/keys/{new['id']}")
    assert deleted.status_code == 200 and deleted.json() == {}
    assert not models_work(console, new["key"])
    assert new["id"] not in [row["id"] for row in api.get("/account/keys").json()["data"]]
    assert api.delete(f"/account/keys/{new['id']}").status_code == 404


def test_another_accounts_keys_are_not_found(console: RunningServer) -> None:
    mine = account_key(console, "alpha-co")
    theirs = account_key(console, "beta-co")
    their_id = theirs.split(".")[0]
    api = httpx.Client(base_url=f"{console.url}/v1", headers=as_key(mine))
    assert their_id not in [row["id"] for row in api.get("/account/keys").json()["data"]]
    assert api.patch(f"/account/keys/{their_id}", json={"disabled": True}).status_code == 404
    assert api.delete(f"/account/keys/{their_id}").status_code == 404
    admin_api = httpx.Client(base_url=f"{console.url}/v1", headers=as_key(admin_key(console)))
    assert admin_api.delete(f"/account/keys/{their_id}").status_code == 404
    assert models_work(console, theirs)
    assert httpx.get(f"{console.url}/v1/account/keys").status_code == 401


def test_a_console_key_inherits_the_calling_keys_limits_and_expiry(console: RunningServer) -> None:
    admin = httpx.Client(base_url=f"{console.url}/admin", headers=as_key(admin_key(console)))
    admin.post("/accounts", json={"name": "inherit-co", "grant": "10"})
    expires = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    parent = admin.post(
        "/accounts/inherit-co/keys",
        json={"name": "ci", "expires_at": expires.isoformat(), "limits": {"concurrency": 2, "rpm": 30}},
    )
    assert parent.status_code == 201, parent.text
    made = httpx.post(f"{console.url}/v1/account/keys", json={"name": "child"}, headers=as_key(parent.json()["key"]))
    assert made.status_code == 200, made.text
    assert datetime.fromisoformat(made.json()["expires_at"]) == expires
    child = admin.get(f"/keys/{made.json()['id']}").json()
    assert child["limits"]["concurrency"] == 2 and child["limits"]["rpm"] == 30


def test_bad_key_requests_are_400s(console: RunningServer) -> None:
    api = httpx.Client(base_url=f"{console.url}/v1", headers=as_key(account_key(console, "keys-co")))
    assert api.post("/account/keys", json={"name": "x" * 201}).status_code == 400
    mine = api.post("/account/keys", json={"name": "k"}).json()
    assert api.patch(f"/account/keys/{mine['id']}", json={"disabled": "maybe"}).status_code == 400


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_price_list_is_the_catalogs(console: RunningServer, prefix: str) -> None:
    key = account_key(console, "keys-co")
    prices = httpx.get(f"{console.url}{prefix}/account/prices", headers=as_key(key))
    assert prices.status_code == 200
    rows: dict[str, dict[str, Any]] = {row["model"]: row for row in prices.json()["data"]}
    chat = rows["smollm2-135m-instruct"]
    assert chat == {
        "model": "smollm2-135m-instruct",
        "kind": "chat",
        "input_per_1k": "0.0001",
        "output_per_1k": "0.0001",
        "per_image": "0",
        "currency": "CNY",
    }
    assert rows["all-minilm-l6-v2"]["kind"] == "embedding" and rows["all-minilm-l6-v2"]["input_per_1k"] == "0.0001"
    assert "default" not in rows  # one row per model, not per alias


# --- sign-in ----------------------------------------------------------------------------------------------


def test_sign_in_gives_a_key_the_openai_sdk_uses_and_logout_revokes_it(console: RunningServer) -> None:
    account_key(console, "web-co")
    done = set_password(console, "web-co", "Ada@Example.com", "correct horse battery")
    assert done.returncode == 0, done.stderr
    signed = login(console, "ada@example.com", "correct horse battery", prefix="/api/paas/v4")
    assert signed.status_code == 200, signed.text
    session = signed.json()
    assert set(session) >= {"key", "expires_at", "account_id"}
    expires = datetime.fromisoformat(session["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=12))) < timedelta(minutes=5)
    client = openai.OpenAI(base_url=f"{console.url}/v1", api_key=session["key"], max_retries=0)
    reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    who = httpx.get(f"{console.url}/v1/auth/session", headers=as_key(session["key"]))
    assert who.status_code == 200
    assert who.json()["auth"] == "on" and who.json()["account_id"] == session["account_id"]
    assert who.json()["user"]["email"] == "Ada@Example.com" and who.json()["user"]["name"] == "Ada"
    keys = httpx.get(f"{console.url}/v1/account/keys", headers=as_key(session["key"])).json()["data"]
    assert "web sign-in" in [row["name"] for row in keys]
    out = httpx.post(f"{console.url}/api/paas/v4/auth/logout", headers=as_key(session["key"]))
    assert out.status_code == 200 and out.json() == {}
    after = httpx.get(f"{console.url}/v1/auth/session", headers=as_key(session["key"]))
    assert after.status_code == 401 and code(after) == "1002"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_logout_with_an_ordinary_key_leaves_it_alone(console: RunningServer) -> None:
    key = account_key(console, "web-co")
    assert httpx.post(f"{console.url}/v1/auth/logout", headers=as_key(key)).json() == {}
    assert models_work(console, key)


def test_wrong_email_or_password_is_the_same_401(console: RunningServer) -> None:
    account_key(console, "web-co")
    assert set_password(console, "web-co", "grace@example.com", "a long password").returncode == 0
    wrong_password = login(console, "grace@example.com", "not the password")
    unknown_email = login(console, "nobody@example.com", "a long password")
    no_password = login(console, "", "")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401 and code(response) == "1004"
    assert wrong_password.json()["error"]["message"] == unknown_email.json()["error"]["message"]
    assert no_password.status_code == 400
    assert login(console, "grace@example.com", "a long password").status_code == 200


def test_failed_sign_ins_are_limited_per_email(console: RunningServer) -> None:
    account_key(console, "web-co")
    assert set_password(console, "web-co", "linus@example.com", "the right one").returncode == 0
    for _ in range(5):
        assert login(console, "linus@example.com", "wrong guess").status_code == 401
    limited = login(console, "linus@example.com", "the right one")
    assert limited.status_code == 429 and code(limited) == "1303" and "retry-after" in limited.headers
    assert login(console, "grace-other@example.com", "whatever pw").status_code == 401  # other emails go on


def test_an_expired_session_key_is_1003(console: RunningServer) -> None:
    account_key(console, "web-co")
    assert set_password(console, "web-co", "kay@example.com", "session expires").returncode == 0
    session = login(console, "kay@example.com", "session expires").json()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    edited = httpx.patch(
        f"{console.url}/admin/keys/{session['key'].split('.')[0]}",
        json={"expires_at": past},
        headers=as_key(admin_key(console)),
    )
    assert edited.status_code == 200, edited.text
    expired = httpx.get(f"{console.url}/v1/auth/session", headers=as_key(session["key"]))
    assert expired.status_code == 401 and code(expired) == "1003"
    listed = httpx.get(f"{console.url}/v1/account/keys", headers=as_key(account_key(console, "web-co"))).json()
    assert session["key"].split(".")[0] not in [row["id"] for row in listed["data"]]  # expired sessions are hidden


def test_the_admin_api_sets_and_clears_passwords(console: RunningServer) -> None:
    admin = httpx.Client(base_url=f"{console.url}/admin", headers=as_key(admin_key(console)))
    admin.post("/accounts", json={"name": "admin-made", "grant": "1"})
    user = admin.post(
        "/accounts/admin-made/users", json={"name": "Bo", "email": "bo@example.com", "password": "pw-12345678"}
    )
    assert user.status_code == 201 and user.json()["can_sign_in"] is True and "password" not in user.text
    assert login(console, "bo@example.com", "pw-12345678").status_code == 200
    taken = admin.post(
        "/accounts/admin-made/users", json={"name": "Bo2", "email": "BO@example.com", "password": "x" * 8}
    )
    assert taken.status_code == 400  # an email signs in one user only
    short = admin.post("/accounts/admin-made/users", json={"name": "C", "email": "c@example.com", "password": "short"})
    assert short.status_code == 400
    changed = admin.patch(f"/accounts/admin-made/users/{user.json()['id']}", json={"password": "new-password"})
    assert changed.status_code == 200
    assert login(console, "bo@example.com", "pw-12345678").status_code == 401
    assert login(console, "bo@example.com", "new-password").status_code == 200
    cleared = admin.patch(f"/accounts/admin-made/users/{user.json()['id']}", json={"clear_password": True})
    assert cleared.status_code == 200 and cleared.json()["can_sign_in"] is False
    assert login(console, "bo@example.com", "new-password").status_code == 401
    assert admin.patch(f"/accounts/admin-made/users/{user.json()['id']}", json={}).status_code == 400


def test_the_cli_refuses_a_short_password(console: RunningServer) -> None:
    account_key(console, "web-co")
    done = set_password(console, "web-co", "short@example.com", "short")
    assert done.returncode == 1 and "password" in done.stderr


def test_session_with_auth_off_is_the_local_account(server: RunningServer) -> None:
    for prefix in PREFIXES:
        who = httpx.get(f"{server.url}{prefix}/auth/session")
        assert who.status_code == 200
        assert who.json()["auth"] == "off" and who.json()["account_id"].startswith("acct_")
        assert "user" not in who.json()
    account = httpx.get(f"{server.url}/v1/account").json()
    assert account["name"] == "local" and account["id"] == who.json()["account_id"]


def test_with_auth_off_the_console_makes_no_keys(server: RunningServer) -> None:
    refused = httpx.post(f"{server.url}/v1/account/keys", json={"name": "open"})
    assert refused.status_code == 403 and code(refused) == "1220"
    assert "authentication is off" in refused.json()["error"]["message"]
    assert httpx.get(f"{server.url}/v1/account/keys").status_code == 200  # listing still works
