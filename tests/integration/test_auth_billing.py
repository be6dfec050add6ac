"""Keys made with the CLI, used by the unmodified SDKs; wrong keys, limits and balances answered in Zhipu's codes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import jwt
import openai
import pytest
import zhipuai
from zhipuai import ZhipuAI
from zhipuai.types.chat.async_chat_completion import AsyncCompletion

from .conftest import MODEL
from .server import RunningServer

MESSAGES = [{"role": "user", "content": "Say hello."}]
NO_END = {"0": -100, "2": -100}  # the default model's end tokens banned: the reply runs to max_tokens


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with authentication on and a priced default model (the catalog's 0.0001 CNY / 1K)."""
    running = RunningServer(log=tmp_path_factory.mktemp("auth") / "server.log", env={"OPENGLM_AUTH": "on"})
    yield running
    running.stop()


def new_key(server: RunningServer, account: str, *extra: str) -> str:
    accounts = server.cli("accounts", "list")
    if f"  {account}  " not in accounts:
        server.cli("accounts", "create", account, "--grant", "10")
    return server.cli("keys", "create", "--account", account, *extra).strip()


def jwt_for(key: str, *, exp_ms: int | None = None, secret: str | None = None) -> str:
    key_id, key_secret = key.split(".")
    now = int(time.time() * 1000)
    payload = {"api_key": key_id, "exp": now + 210_000 if exp_ms is None else exp_ms, "timestamp": now}
    return jwt.encode(payload, secret or key_secret, algorithm="HS256", headers={"alg": "HS256", "sign_type": "SIGN"})


def post_chat(server: RunningServer, authorization: str | None, **body: object) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    payload = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, **body}
    return httpx.post(f"{server.url}/api/paas/v4/chat/completions", json=payload, headers=headers, timeout=60)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_openai_sdk_with_a_cli_key(billed: RunningServer) -> None:
    key = new_key(billed, "acme")
    client = openai.OpenAI(base_url=f"{billed.url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)  # type: ignore[arg-type]
    assert reply.usage is not None and reply.usage.completion_tokens > 0


@pytest.mark.parametrize("disable_token_cache", [True, False], ids=["raw-key", "jwt"])
def test_zhipuai_sdk_raw_key_and_jwt_modes(billed: RunningServer, disable_token_cache: bool) -> None:
    key = new_key(billed, "acme")
    client = ZhipuAI(
        api_key=key, base_url=f"{billed.url}/api/paas/v4", max_retries=0, disable_token_cache=disable_token_cache
    )
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert reply.usage.total_tokens > 0
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, stream=True))
    assert chunks[-1].usage.completion_tokens > 0


def test_all_four_header_forms(billed: RunningServer) -> None:
    key = new_key(billed, "acme")
    token = jwt_for(key)
    for form in (f"Bearer {key}", key, token, f"Bearer {token}", f"bearer {key}"):
        response = post_chat(billed, form)
        assert response.status_code == 200, (form[:12], response.text)


@pytest.mark.parametrize(
    ("make_header", "code"),
    [
        (lambda key: None, "1001"),
        (lambda key: "Bearer", "1001"),
        (lambda key: "Bearer not-a-key", "1002"),
        (lambda key: "Bearer 0123456789abcdef0123456789abcdef.secret", "1002"),
        (lambda key: f"Bearer {key.split('.')[0]}.wrongsecret", "1004"),
        (lambda key: jwt_for(key, secret="forged-secret"), "1004"),
        (lambda key: jwt_for(key, exp_ms=int(time.time() * 1000) - 600_000), "1003"),
        (lambda key: jwt_for(key, exp_ms=int(time.time()) - 600), "1003"),  # seconds, as third-party clients send
    ],
    ids=[
        "missing",
        "empty",
        "malformed",
        "unknown-key",
        "wrong-secret",
        "forged-jwt",
        "expired-jwt-ms",
        "expired-jwt-s",
    ],
)
def test_wrong_credentials_get_401_with_zhipu_codes(billed: RunningServer, make_header, code: str) -> None:  # type: ignore[no-untyped-def]
    response = post_chat(billed, make_header(new_key(billed, "acme")))
    assert response.status_code == 401
    assert error_code(response) == code


def test_tampered_jwt_is_refused(billed: RunningServer) -> None:
    key = new_key(billed, "acme")
    header, _payload, signature = jwt_for(key).split(".")
    other = jwt_for(key, exp_ms=int(time.time() * 1000) + 10_000_000).split(".")[1]
    response = post_chat(billed, f"{header}.{other}.{signature}")
    assert (response.status_code, error_code(response)) == (401, "1004")


def test_sdks_raise_their_authentication_errors(billed: RunningServer) -> None:
    bad = "0123456789abcdef0123456789abcdef.secret"
    with pytest.raises(zhipuai.APIAuthenticationError):
        ZhipuAI(api_key=bad, base_url=f"{billed.url}/api/paas/v4", max_retries=0).chat.completions.create(
            model=MODEL, messages=MESSAGES
        )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{billed.url}/v1", api_key=bad, max_retries=0).models.list()


def test_disabled_key_and_disabled_account(billed: RunningServer) -> None:
    key = new_key(billed, "acme")
    assert post_chat(billed, key).status_code == 200
    billed.cli("keys", "disable", key.split(".")[0])
    assert error_code(post_chat(billed, key)) == "1004"
    billed.cli("keys", "enable", key.split(".")[0])
    assert post_chat(billed, key).status_code == 200
    billed.cli("keys", "delete", key.split(".")[0])
    assert error_code(post_chat(billed, key)) == "1002"

    other = new_key(billed, "shutdown-co")
    billed.cli("accounts", "disable", "shutdown-co")
    response = post_chat(billed, other)
    assert (response.status_code, error_code(response)) == (403, "1110")


def test_expired_key(billed: RunningServer) -> None:
    key = new_key(billed, "acme", "--expires-at", "2020-01-01T00:00:00+00:00")
    assert error_code(post_chat(billed, key)) == "1003"


def test_a_call_is_metered_and_charged(billed: RunningServer) -> None:
    key = new_key(billed, "metered-co")
    headers = {"Authorization": f"Bearer {key}"}
    before = httpx.get(f"{billed.url}/v1/account", headers=headers).json()["balance"]
    reply = post_chat(billed, key, max_tokens=8).json()
    usage = httpx.get(f"{billed.url}/v1/account/usage", params={"by": "key"}, headers=headers).json()
    row = next(r for r in usage["data"] if r["group"] == key.split(".")[0])
    assert row["requests"] == 1
    assert row["prompt_tokens"] == reply["usage"]["prompt_tokens"]
    assert row["completion_tokens"] == reply["usage"]["completion_tokens"]
    ledger = httpx.get(f"{billed.url}/api/paas/v4/account/ledger", headers=headers).json()["data"]
    charge = next(e for e in ledger if e["usage_id"] == reply["id"])
    assert charge["kind"] == "charge" and charge["amount"] == "-" + row["cost"]
    after = httpx.get(f"{billed.url}/v1/account", headers=headers).json()["balance"]
    assert float(before) - float(after) == pytest.approx(float(row["cost"]))


def test_no_balance_gets_1113_before_the_engine(billed: RunningServer) -> None:
    billed.cli("accounts", "create", "broke-co", "--grant", "0")
    key = new_key(billed, "broke-co")
    response = post_chat(billed, key)
    assert (response.status_code, error_code(response)) == (429, "1113")
    assert response.headers["x-should-retry"] == "false"
    with pytest.raises(zhipuai.APIReachLimitError):
        ZhipuAI(api_key=key, base_url=f"{billed.url}/api/paas/v4").chat.completions.create(
            model=MODEL, messages=MESSAGES
        )
    usage = httpx.get(f"{billed.url}/v1/account/usage", headers={"Authorization": key}).json()
    assert usage["data"] == []  # refused calls are not charged
    billed.cli("accounts", "topup", "broke-co", "1")
    assert post_chat(billed, key).status_code == 200


def test_requests_per_minute_limit(billed: RunningServer) -> None:
    key = new_key(billed, "acme", "--rpm", "2")
    assert [post_chat(billed, key).status_code for _ in range(2)] == [200, 200]
    third = post_chat(billed, key)
    assert (third.status_code, error_code(third)) == (429, "1303")
    assert int(third.headers["retry-after"]) > 0


def test_daily_token_quota(billed: RunningServer) -> None:
    key = new_key(billed, "acme", "--daily-tokens", "5")
    assert post_chat(billed, key).status_code == 200  # this one takes the key over its quota
    over = post_chat(billed, key)
    assert (over.status_code, error_code(over)) == (429, "1304")
    assert over.headers["x-should-retry"] == "false"


def test_concurrency_limit(billed: RunningServer) -> None:
    key = new_key(billed, "acme", "--concurrency", "1")
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST",
            f"{billed.url}/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 400, "stream": True, "logit_bias": NO_END},
            headers={"Authorization": f"Bearer {key}"},
        ) as first,
    ):
        lines = first.iter_lines()  # kept: dropping the iterator would close the stream
        assert next(lines).startswith("data: ")  # the first request is generating
        second = post_chat(billed, key)
        assert (second.status_code, error_code(second)) == (429, "1302")
    # The cancelled stream gives its slot back as soon as the server notices the disconnect.
    assert eventually(lambda: post_chat(billed, key).status_code == 200)


def test_admin_api_needs_an_admin_key(billed: RunningServer) -> None:
    user_key = new_key(billed, "acme")
    admin_key = billed.cli("keys", "create", "--admin").strip()
    denied = httpx.get(f"{billed.url}/admin/accounts", headers={"Authorization": f"Bearer {user_key}"})
    assert (denied.status_code, error_code(denied)) == (403, "1220")
    assert httpx.get(f"{billed.url}/admin/accounts").status_code == 401
    admin = httpx.Client(base_url=f"{billed.url}/admin", headers={"Authorization": f"Bearer {admin_key}"})
    created = admin.post("/accounts", json={"name": "via-api", "grant": "3"})
    assert created.status_code == 201 and created.json()["balance"] == "3"
    key = admin.post("/accounts/via-api/keys", json={"name": "k", "limits": {"rpm": 100}}).json()
    assert key["key"].startswith(key["id"] + ".") and key["limits"]["rpm"] == 100
    assert post_chat(billed, key["key"]).status_code == 200
    listed = admin.get("/keys", params={"account": "via-api"}).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]  # the secret is never shown again
    assert admin.patch(f"/keys/{key['id']}", json={"status": "disabled"}).json()["status"] == "disabled"
    assert error_code(post_chat(billed, key["key"])) == "1004"
    topup = admin.post("/accounts/via-api/ledger", json={"kind": "topup", "amount": "2.5", "note": "invoice 7"})
    assert topup.status_code == 201
    assert admin.get("/accounts/via-api").json()["balance"].startswith("5.49")
    bad = admin.post("/accounts/via-api/ledger", json={"kind": "topup", "amount": "-1"})
    assert (bad.status_code, error_code(bad)) == (400, "1214")
    missing = admin.get("/accounts/nobody")
    assert missing.status_code == 404
    usage = admin.get("/usage", params={"by": "model", "account": "via-api"}).json()
    assert usage["data"][0]["requests"] == 1


def test_public_bind_refuses_auth_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RunningServer(log=tmp_path / "server.log", host="0.0.0.0", env={"OPENGLM_AUTH": "off"}, wait=False)
    assert server.process.wait(timeout=60) != 0
    server.stop()
    assert "OPENGLM_AUTH=off is refused" in server.log_path.read_text()


def test_loopback_default_says_auth_is_off(server: RunningServer) -> None:
    assert "authentication is OFF" in server.log_path.read_text()


def test_secrets_never_reach_the_log(billed: RunningServer) -> None:
    key = new_key(billed, "acme")
    secret = key.split(".")[1]
    for header in (key, f"Bearer {key}", jwt_for(key), f"{key.split('.')[0]}.wrong-{secret[::-1]}"):
        post_chat(billed, header)
    log = billed.log_path.read_text(errors="replace")
    assert secret not in log and secret[::-1] not in log


def test_request_id_is_bounded(billed: RunningServer) -> None:
    key = new_key(billed, "acme")
    too_long = post_chat(billed, key, request_id="r" * 129)
    assert too_long.status_code == 400
    with_nul = post_chat(billed, key, request_id="a\x00b")
    assert with_nul.status_code == 400
    assert post_chat(billed, key, request_id="r" * 128).status_code == 200


def test_admin_api_refuses_bad_input_with_4xx(billed: RunningServer) -> None:
    admin_key = billed.cli("keys", "create", "--admin").strip()
    admin = httpx.Client(base_url=f"{billed.url}/admin", headers={"Authorization": f"Bearer {admin_key}"})
    assert admin.post("/accounts", json={"name": "grant-check", "grant": "-5"}).status_code == 400
    assert admin.post("/accounts", json={"name": "grant-check", "grant": "1e12"}).status_code == 400
    assert admin.get("/accounts/grant-check").status_code == 404  # nothing half-made
    admin.post("/accounts", json={"name": "grant-check"})
    naive = admin.post("/accounts/grant-check/keys", json={"expires_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 400  # a time without a zone is ambiguous
    negative = admin.post("/accounts/grant-check/keys", json={"limits": {"rpm": -1}})
    assert negative.status_code == 400


@pytest.mark.parametrize("disable_token_cache", [True, False], ids=["raw-key", "jwt"])
def test_zhipuai_sdk_async_chat_in_both_modes(billed: RunningServer, disable_token_cache: bool) -> None:
    """``chat.asyncCompletions``: queued at once, its result read back as the SDK's ``AsyncCompletion`` (the same
    answer a sync call gives, on the real default model), and another account's task id is not found."""
    client = ZhipuAI(
        api_key=new_key(billed, "acme"),
        base_url=f"{billed.url}/api/paas/v4",
        max_retries=0,
        disable_token_cache=disable_token_cache,
    )
    task = client.chat.asyncCompletions.create(model=MODEL, messages=MESSAGES, max_tokens=4, temperature=0)
    assert task.task_status == "PROCESSING" and task.id
    assert eventually(
        lambda: client.chat.asyncCompletions.retrieve_completion_result(task.id).task_status != "PROCESSING", 60
    )
    result = client.chat.asyncCompletions.retrieve_completion_result(task.id)
    assert isinstance(result, AsyncCompletion) and result.task_status == "SUCCESS"
    sync = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, temperature=0)
    assert result.choices[0].message.content == sync.choices[0].message.content
    assert result.usage.total_tokens == sync.usage.total_tokens
    stranger = ZhipuAI(api_key=new_key(billed, "stranger"), base_url=f"{billed.url}/api/paas/v4", max_retries=0)
    with pytest.raises(zhipuai.APIStatusError) as refused:
        stranger.chat.asyncCompletions.retrieve_completion_result(task.id)
    assert refused.value.status_code == 404
