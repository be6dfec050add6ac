"""The web app in headless Chromium against the real server (auth on, a key the platform made): sign in, chat
with the default model and with glm-4-alltools running code, a knowledge base from upload to a cited answer, an
agent made and used, the console, the playground. Assertions are on structure, never on the small model's words;
the scripted agent's words are fixed by its script."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from ..integration.server import RunningServer
from ..integration.test_console import set_password
from .conftest import BUILDER_DRAFT, SUGGESTIONS, screenshot

GUIDE = (
    "# Growing tomatoes\n\nTomatoes need full sun: six to eight hours of direct sunlight a day.\n\n"
    "## Watering\n\nWater deeply twice a week; keep the leaves dry to avoid blight.\n"
)
CHAT_PATHS = ("/v1/chat/completions", "/v1/assistant")
LONG = 180_000  # ms: a first call loads the model, a first upload the embedding model


def send(page: Any, text: str) -> Any:
    """Type a message, send it with Enter, and wait for the answer to finish; the answer's element."""
    before = page.locator("article.turn.assistant").count()
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")
    answer = page.locator("article.turn.assistant").nth(before)
    answer.locator(".parts[aria-busy='false']").wait_for(timeout=LONG)
    return answer


def test_shell_and_assets_are_served_with_strict_headers(server: RunningServer) -> None:
    shell = httpx.get(f"{server.url}/")
    assert shell.status_code == 200 and shell.headers["content-type"].startswith("text/html")
    csp = shell.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert shell.headers["cache-control"] == "no-cache"
    scripts = re.findall(r"<script[^>]*>", shell.text)
    assert scripts and all("src=" in tag for tag in scripts)  # no inline script
    assert "http://" not in shell.text and "https://" not in shell.text  # nothing from another origin
    [main_js] = re.findall(r'src="(/app/[0-9a-f]{12}/main\.js)"', shell.text)
    asset = httpx.get(f"{server.url}{main_js}")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    css = httpx.get(f"{server.url}{main_js.replace('main.js', 'app.css')}")
    assert css.headers["content-type"].startswith("text/css")
    stale = httpx.get(f"{server.url}/app/000000000000/main.js")
    assert stale.status_code == 404 and "error" in stale.json()
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # the API is not shadowed
    assert httpx.get(f"{server.url}/v1/models").status_code == 401  # and still needs a key


def test_sign_in_with_a_key(browser: Any, server: RunningServer, key: str) -> None:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto("/")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.locator("#nav").is_hidden()
    page.get_by_label("API key", exact=True).fill("0" * 32 + ".wrongwrongwrongwrongwron")
    page.locator("form", has_text="With an API key").get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    screenshot(page, "signin")
    page.get_by_label("API key", exact=True).fill(key)
    page.locator("form", has_text="With an API key").get_by_role("button", name="Sign in").click()
    page.locator("#nav").wait_for()
    assert page.url.endswith("#/chat")
    assert "web" in page.locator("#who").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    context.close()


def test_sign_in_with_email_and_password(browser: Any, server: RunningServer, key: str) -> None:
    done = set_password(server, "web", "ada@example.org", "correct horse battery")
    assert done.returncode == 0, done.stderr
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Password").fill("wrong password")
    page.locator("form", has_text="With your account").get_by_role("button", name="Sign in").click()
    page.locator("form", has_text="With your account").get_by_role("alert").wait_for()
    page.get_by_label("Password").fill("correct horse battery")
    page.locator("form", has_text="With your account").get_by_role("button", name="Sign in").click()
    page.locator("#nav").wait_for()
    session_key = page.evaluate("() => localStorage.getItem('openglm.key')")
    assert httpx.get(f"{server.url}/v1/account", headers={"Authorization": f"Bearer {session_key}"}).status_code == 200
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.evaluate("() => localStorage.getItem('openglm.key')") is None
    assert httpx.get(f"{server.url}/v1/account", headers={"Authorization": f"Bearer {session_key}"}).status_code == 401
    context.close()


def test_chat_with_the_default_model_streams_an_answer(page: Any) -> None:
    page.goto("/#/chat")
    page.get_by_label("Talk to").select_option("default")
    answer = send(page, "Say hello in one short sentence.")
    assert answer.locator(".text").inner_text().strip()  # some text, whatever the words
    assert re.search(r"\d+ \+ \d+ tokens", answer.locator(".usage").inner_text())
    assert not answer.locator(".error").count()
    page.locator(".history-list a", has_text="Say hello").wait_for()  # kept in the history list
    screenshot(page, "chat")


def test_alltools_agent_runs_code_in_a_tool_panel(page: Any) -> None:
    page.goto("/#/chat")
    page.get_by_label("Talk to").select_option("glm-4-alltools")
    assert page.get_by_label("Code interpreter").is_checked()
    page.locator("#attach").set_input_files(files=[{"name": "data.csv", "mimeType": "text/csv", "buffer": b"1\n2\n"}])
    page.locator(".composer .attached li", has_text="data.csv").wait_for()
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith(CHAT_PATHS)) as sent:
        answer = send(page, "What is 40 + 2? Use Python.")
    body = sent.value.post_data_json
    assert body["stream"] is True
    if sent.value.url.endswith("/v1/assistant"):  # the Assistant API, where the server has it
        assert body["assistant_id"] == "glm-4-alltools"
        files = [a["file_id"] for a in body["attachments"]]
    else:  # chat completions in the glm-4-alltools format
        assert body["model"] == "glm-4-alltools"
        [code_tool] = [t for t in body["tools"] if t["type"] == "code_interpreter"]
        files = code_tool["code_interpreter"]["file_ids"]
    assert [f.startswith("file-") for f in files] == [True]  # the attachment
    panel = answer.locator("details.tool-code_interpreter")
    assert panel.locator(".tool-input").inner_text() == "print('sum=' + str(40 + 2))"
    assert panel.locator(".logs").inner_text().strip() == "sum=42"
    assert answer.locator(".text").inner_text().strip() == "The sum is 42."
    if sent.value.url.endswith("/v1/assistant"):  # a stored conversation: the server proposes follow-ups
        answer.get_by_role("button", name="Suggest follow-ups").click()
        answer.locator(".suggestions button", has_text=SUGGESTIONS[0]).wait_for()
        assert answer.locator(".suggestions button").all_inner_texts() == SUGGESTIONS
    screenshot(page, "chat-alltools")
    page.get_by_role("button", name="New chat").click()
    page.locator(".transcript article").first.wait_for(state="detached")
    page.locator(".history-list a", has_text="What is 40 + 2? Use Python.").first.click()  # reopened from history
    kept = page.locator("article.turn.assistant").first
    assert kept.locator("details.tool-code_interpreter .logs").inner_text().strip() == "sum=42"
    assert kept.locator(".text").inner_text().strip() == "The sum is 42."
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "chat-narrow")


def test_knowledge_base_upload_chunks_retrieval_and_a_cited_answer(page: Any, tmp_path: Any) -> None:
    page.goto("/#/knowledge")
    page.get_by_label("Name").fill("Garden")
    page.get_by_label("Description").fill("How to garden")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("heading", name="Garden").wait_for()
    document = tmp_path / "tomatoes.md"
    document.write_text(GUIDE, encoding="utf-8")
    page.get_by_label("Files").set_input_files(str(document))
    page.get_by_role("button", name="Upload").click()
    page.locator("tr[data-status='ready']", has_text="tomatoes.md").wait_for(timeout=LONG)
    assert page.get_by_label("Upload progress").evaluate("bar => bar.value") == 1
    page.get_by_role("button", name="Chunks").click()
    chunks = page.locator("ol.chunks li")
    chunks.first.wait_for()
    assert "six to eight hours" in page.locator("ol.chunks").inner_text()
    page.get_by_label("Question").fill("how much sun do tomatoes need")
    page.get_by_role("button", name="Search").click()
    hit = page.locator("li.hit").first
    hit.wait_for()
    assert "tomatoes.md" in hit.inner_text() and "sunlight" in hit.inner_text()
    screenshot(page, "knowledge")

    page.goto("/#/chat")
    page.get_by_label("Talk to").select_option("default")
    page.get_by_label("Answer from knowledge base").select_option(label="Garden")
    answer = send(page, "How much sun do tomatoes need?")
    citations = answer.locator("ol.citations li")
    assert citations.count() >= 1
    assert "tomatoes.md" in citations.first.inner_text() and "sunlight" in answer.locator("ol.citations").inner_text()
    screenshot(page, "chat-cited")


def builder_available(server: RunningServer, key: str) -> bool:
    answer = httpx.post(f"{server.url}/v1/glms/builder", json={}, headers={"Authorization": f"Bearer {key}"})
    return answer.status_code != 405 and not (answer.status_code == 404 and answer.json()["error"]["code"] == "1222")


def test_create_an_agent_and_chat_with_it_using_a_tool(page: Any, server: RunningServer, key: str) -> None:
    page.goto("/#/agents/new")
    page.get_by_role("heading", name="Create an agent").wait_for()
    name_box = page.get_by_label("Name", exact=True)
    if builder_available(server, key):  # made by conversation: the builder fills the form in
        page.get_by_label("Builder model").select_option("script-builder")
        page.get_by_label("Describe your agent").fill("An agent that does arithmetic with Python, called Calculator.")
        page.get_by_role("button", name="Send").click()
        page.locator(".builder-log p.reply, .builder-log p.error").first.wait_for(timeout=LONG)
        assert not page.locator(".builder-log p.error").count(), page.locator(".builder-log p.error").inner_text()
        assert page.locator(".builder-log p.reply").inner_text() == BUILDER_DRAFT["reply"]
        assert name_box.input_value() == "Calculator"
        assert page.get_by_label("Instructions").input_value() == BUILDER_DRAFT["instructions"]
        assert page.get_by_role("checkbox", name="Code interpreter").is_checked()
        assert page.get_by_label("Starter prompts").input_value() == "What is 40 + 2?"
    else:  # made with the form alone
        name_box.fill("Calculator")
        page.get_by_label("Description").fill("Works sums out in Python.")
        page.get_by_label("Instructions").fill("Use Python for every calculation.")
    name = name_box.input_value().strip()
    # The model the builder cannot choose: the scripted one, so that the agent's tool call is certain.
    page.get_by_label("Model", exact=True).select_option("script-code")
    page.get_by_role("checkbox", name="Code interpreter").check()
    page.get_by_label("Starter prompts").fill("What is 40 + 2?")
    page.get_by_label("Visibility").select_option("listed")
    screenshot(page, "agent-editor")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("heading", name=f"Edit {name}").wait_for()
    agent_id = page.url.rsplit("/", 1)[1]
    assert "Version 1" in page.locator("ol.versions").inner_text()

    page.goto("/#/agents")
    page.get_by_label("Search agents").fill(name)
    card = page.locator(f".agent-grid:not(.mine) li.agent[data-id='{agent_id}']")
    card.wait_for()
    screenshot(page, "agents")
    card.get_by_role("link", name="Use").click()
    page.get_by_role("button", name="What is 40 + 2?", exact=True).click()  # a starter prompt
    answer = page.locator("article.turn.assistant").first
    answer.locator(".parts[aria-busy='false']").wait_for(timeout=LONG)
    assert answer.locator("details.tool-code_interpreter .logs").inner_text().strip() == "sum=42"
    assert answer.locator(".text").inner_text().strip() == "The sum is 42."

    usage = httpx.get(f"{server.url}/v1/glms/{agent_id}/usage", headers={"Authorization": f"Bearer {key}"})
    if usage.status_code == 200:  # the creator's view, where the server has it
        page.goto(f"/#/agents/edit/{agent_id}")
        calls = page.locator("table.glm-usage tr", has_text="Calls").locator("td")
        calls.wait_for()
        assert int(calls.inner_text()) >= 1
        assert page.locator("section", has_text="Usage of this agent").locator("svg.chart rect.bar").count() >= 1
        screenshot(page, "agent-usage")


def test_the_agent_editor_offers_the_account_s_fine_tuned_models(page: Any, server: RunningServer, key: str) -> None:
    """A fine-tuned model of the signed-in account is in the form's model list, in a group of its own, and is saved
    as the agent's model."""
    tuned = fine_tune(server, key)
    page.goto("/#/agents/new")
    page.get_by_role("heading", name="Create an agent").wait_for()
    choice = page.get_by_label("Model", exact=True)
    assert tuned in choice.locator("optgroup[label='Fine-tuned models'] option").all_inner_texts()
    assert "default" in choice.locator("optgroup[label='Models'] option").all_inner_texts()
    page.get_by_label("Name", exact=True).fill("Tuned helper")
    choice.select_option(tuned)
    page.get_by_role("button", name="Save").click()
    page.get_by_role("heading", name="Edit Tuned helper").wait_for()
    agent_id = page.url.rsplit("/", 1)[1]
    saved = httpx.get(f"{server.url}/v1/glms/{agent_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert saved["config"]["model"] == tuned


def fine_tune(server: RunningServer, key: str) -> str:
    """A fine-tuned model of the key's account (the test trainer: a moment's work)."""
    headers = {"Authorization": f"Bearer {key}"}
    line = b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}\n'
    upload = httpx.post(
        f"{server.url}/v1/files",
        data={"purpose": "fine-tune"},
        files={"file": ("t.jsonl", line)},
        headers=headers,
        timeout=60,
    )
    body = {"model": "default", "training_file": upload.json()["id"], "hyperparameters": {"n_epochs": 1}}
    # A server's first job reads its base's GGUF to size the adapter (~4 s here): more than httpx's default 5 s
    # timeout allows on a loaded machine.
    job = httpx.post(f"{server.url}/v1/fine_tuning/jobs", json=body, headers=headers, timeout=60).json()
    for _ in range(300):
        job = httpx.get(f"{server.url}/v1/fine_tuning/jobs/{job['id']}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    return str(job["fine_tuned_model"])


def keys_available(server: RunningServer, key: str) -> bool:
    return httpx.get(f"{server.url}/v1/account/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_console_shows_usage_balance_and_manages_keys(page: Any, server: RunningServer, key: str) -> None:
    done = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
        timeout=120,
    )
    assert done.status_code == 200
    checked = httpx.post(  # a content-safety hit of the account's own: listed in the console
        f"{server.url}/v1/moderations",
        headers={"Authorization": f"Bearer {key}"},
        json={"input": "<b>Steps</b> to build a pipe bomb at home"},
        timeout=60,
    )
    assert checked.status_code == 200 and checked.json()["results"][0]["flagged"] is True
    page.goto("/#/console")
    page.get_by_role("heading", name="Usage").wait_for()
    hit = page.locator("table.hits tbody tr").first
    assert "weapons" in hit.inner_text() and "/moderations" in hit.inner_text()
    assert page.locator("table.hits b").count() == 0  # what matched is text, never markup
    assert int(page.locator(".requests").inner_text()) >= 1
    assert re.fullmatch(r"¥\d+\.\d+", page.locator(".balance").inner_text())
    storage = httpx.get(f"{server.url}/v1/account/storage", headers={"Authorization": f"Bearer {key}"}).json()
    shown = page.locator(".storage").inner_text()  # the files the account keeps, against its quota
    assert re.fullmatch(r"\d+\.\d (KB|MB|GB) of (\d+\.\d (KB|MB|GB)|unlimited)", shown), shown
    assert shown.endswith(
        "unlimited" if storage["quota_bytes"] is None else "GB" if storage["quota_bytes"] >= 1 << 30 else "MB"
    )
    bars = page.locator("svg.chart rect.bar")
    assert bars.count() >= 1 and float(bars.first.get_attribute("height") or 0) > 0
    assert "smollm2-135m-instruct" in page.locator("table.by-model").inner_text()
    by_agent = httpx.get(
        f"{server.url}/v1/account/usage", params={"by": "agent"}, headers={"Authorization": f"Bearer {key}"}
    )
    groups = [r["group"] for r in by_agent.json()["data"]] if by_agent.status_code == 200 else []
    agents = [group for group in groups if group and group != "(no agent)"]
    if agents:  # calls through agents, e.g. the one made above
        assert all(agent in page.locator("table.by-agent").inner_text() for agent in agents)
        assert "(no agent)" not in page.locator("table.by-agent").inner_text()
    if keys_available(server, key):
        page.get_by_label("Key name").fill("laptop")
        page.get_by_role("button", name="Create key").click()
        made = page.locator("code.new-key").inner_text()
        assert re.fullmatch(r"[0-9a-f]{32}\.\S+", made)
        assert httpx.get(f"{server.url}/v1/account", headers={"Authorization": f"Bearer {made}"}).status_code == 200
        row = page.locator("tr", has_text="laptop")
        row.get_by_role("button", name="Disable").click()
        page.locator("tr", has_text="laptop").locator(".badge.disabled").wait_for()
        assert page.locator("tr", has_text="laptop").get_by_role("button", name="Enable").count() == 0  # operators'
        assert httpx.get(f"{server.url}/v1/account", headers={"Authorization": f"Bearer {made}"}).status_code == 401
    screenshot(page, "console")


def test_playground_shows_the_raw_request_and_stream(page: Any) -> None:
    page.goto("/#/playground")
    page.get_by_label("Max tokens").fill("16")
    page.get_by_label("Temperature").fill("0")
    request = page.get_by_label("Request", exact=True).inner_text()
    assert '"max_tokens": 16' in request and '"temperature": 0' in request
    page.get_by_role("button", name="Run").click()
    response = page.get_by_label("Response", exact=True)
    page.wait_for_function("() => document.querySelector('pre.response').textContent.includes('[DONE]')", timeout=LONG)
    text = response.inner_text()
    assert text.startswith("HTTP 200") and text.count("data: {") >= 2
    screenshot(page, "playground")


TRAINING = [
    {"messages": [{"role": "user", "content": f"Code word {n}?"}, {"role": "assistant", "content": f"Zebra-{n}"}]}
    for n in range(3)
]
XSS = "<img src=x onerror=window.__xss=1>"


def jsonl(lines: list[Any]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def fine_tuning_jobs(server: RunningServer, key: str) -> int:
    jobs = httpx.get(f"{server.url}/v1/fine_tuning/jobs?limit=100", headers={"Authorization": f"Bearer {key}"})
    return len(jobs.json()["data"])


def test_fine_tuning_page_from_a_files_line_errors_to_a_trained_model_in_the_playground(
    page: Any, server: RunningServer, key: str, tmp_path: Any
) -> None:
    page.goto("/#/finetune")
    page.get_by_role("heading", name="Fine-tuning", exact=True).wait_for()
    bases = page.get_by_label("Base model").locator("option").all_inner_texts()
    assert set(bases) == {"smollm2-135m-instruct", "default"}  # fine_tunable: not the scripted models
    assert page.get_by_label("Base model").input_value() == "default"
    assert page.get_by_label("Beta").is_hidden()  # DPO's only

    # A file with bad lines: the server's problems, one per line, as text; no job, the upload removed.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        jsonl(
            [
                TRAINING[0],
                {"messages": [{"role": "user", "content": "?"}]},
                {"messages": [{"role": XSS, "content": "x"}, {"role": "assistant", "content": "y"}]},
            ]
        )
    )
    jobs_before = fine_tuning_jobs(server, key)
    page.get_by_label("Training file").set_input_files(str(bad))
    page.get_by_role("button", name="Start job").click()
    problems = page.locator(".problems[role='alert'] ul.line-problems li")
    problems.first.wait_for()
    assert problems.all_inner_texts() == [
        "line 2: messages: no assistant message (nothing to train on)",
        f"line 3: messages[0]: role must be one of system, user, assistant, tool, not '{XSS}'",
    ]
    assert page.locator(".problems img").count() == 0 and page.evaluate("() => window.__xss") is None
    assert fine_tuning_jobs(server, key) == jobs_before
    screenshot(page, "finetune-errors")

    # A valid file and a validation file: the job runs on the test trainer, charted and logged as it goes.
    good, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    good.write_text(jsonl(TRAINING))
    valid.write_text(jsonl(TRAINING[:1]))
    page.get_by_label("Training file").set_input_files(str(good))
    page.get_by_label("Validation file").set_input_files(str(valid))
    page.get_by_label("Epochs").fill("2")
    page.get_by_label("Batch size").fill("1")
    page.get_by_label("Suffix").fill("web")
    page.get_by_role("button", name="Start job").click()
    page.get_by_role("heading", name=re.compile(r"^Job ftjob-")).wait_for()
    page.get_by_role("link", name="Open in playground").wait_for(timeout=60_000)
    chart = page.locator("svg.line-chart")
    assert chart.locator(".series.train circle").count() == 6  # a point per step: 3 lines × 2 epochs
    assert chart.locator(".series.valid circle").count() == 6 and chart.locator("polyline").count() == 2
    assert "validation loss at step 6: 0.417" in (chart.locator("desc").text_content() or "")
    events = page.locator("ol.events").inner_text()
    assert "step 6/6: training loss 0.3333, validation loss 0.4167" in events
    model = re.search(r"the fine-tuned model (ft:smollm2-135m-instruct:web:\w+) is ready", events)
    assert model is not None, events
    assert page.get_by_label("Training progress").evaluate("bar => bar.value") == 1
    page.locator("ul.result-files a", has_text="-adapter.gguf").wait_for()  # the adapter, published to download
    assert page.locator("ul.result-files a").count() == 3 and page.locator("img.loss-curve").count() == 1
    screenshot(page, "finetune-job")

    page.get_by_role("link", name="Open in playground").click()
    page.get_by_role("heading", name="Playground").wait_for()
    assert page.get_by_label("Model", exact=True).input_value() == model[1]
    assert f'"model": "{model[1]}"' in page.get_by_label("Request", exact=True).inner_text()

    page.goto("/#/finetune")  # the job in the list
    page.locator("table.jobs tr[data-status='succeeded']", has_text=model[1]).wait_for()


@pytest.mark.parametrize("route", ["chat", "agents", "knowledge", "finetune", "console", "playground"])
def test_every_page_has_one_heading_and_labelled_controls(page: Any, route: str) -> None:
    page.goto(f"/#/{route}")
    page.locator("main h1").wait_for()
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
             .filter(el => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
             .map(el => el.outerHTML)"""
    )
    assert unlabelled == []
    assert page.locator("main h1").count() == 1


# A PNG of one pixel, uploaded as a file of the account: what a drawing tool's link points at.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000"
    "1ff5a6b3b4e0000000049454e44ae426082"
)


def test_tool_panels_from_assistant_api_and_alltools_chunks(page: Any, server: RunningServer, key: str) -> None:
    """The stream shapes the server does not produce in this run (web browser, drawing, the Assistant API's
    tool deltas) drawn by the same code: sources are links, pictures are fetched with the key, model text that
    looks like markup stays text."""
    picture = httpx.post(
        f"{server.url}/v1/files",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("pixel.png", PIXEL, "image/png")},
        data={"purpose": "assistant"},
    ).json()
    image_url = f"{server.url}/v1/files/{picture['id']}/content"
    chunks = [
        # the Assistant API: a browser call's input, then its outputs, as role "tool" deltas
        {
            "id": "a1",
            "conversation_id": "conv1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "tool",
                        "tool_calls": [{"type": "web_browser", "web_browser": {"input": 'search("tomato sun")'}}],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "tool",
                        "tool_calls": [
                            {
                                "type": "web_browser",
                                "web_browser": {
                                    "outputs": [
                                        {
                                            "title": "Tomato guide",
                                            "link": "https://example.org/tomatoes",
                                            "content": "Six hours.",
                                        }
                                    ]
                                },
                            }
                        ],
                    },
                }
            ],
        },
        # glm-4-alltools: two code calls in one round (fragments under their ids), then their outputs in order
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "call_a", "type": "code_interpreter", "code_interpreter": {"input": "print("}}
                        ],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "call_a", "type": "code_interpreter", "code_interpreter": {"input": "1)"}}
                        ],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "call_b", "type": "code_interpreter", "code_interpreter": {"input": "print(2)"}}
                        ],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "tool",
                        "tool_calls": [
                            {
                                "type": "code_interpreter",
                                "code_interpreter": {"outputs": [{"type": "logs", "logs": "1\n"}]},
                            }
                        ],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "tool",
                        "tool_calls": [
                            {
                                "type": "code_interpreter",
                                "code_interpreter": {"outputs": [{"type": "logs", "logs": "2\n"}]},
                            }
                        ],
                    },
                }
            ],
        },
        # glm-4-alltools: a drawing call streamed in fragments, then its picture
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [{"id": "call_1", "type": "drawing_tool", "drawing_tool": {"input": "a red "}}],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [{"id": "call_1", "type": "drawing_tool", "drawing_tool": {"input": "tomato"}}],
                    },
                }
            ],
        },
        {"id": "a1", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "tool_calls"}]},
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "tool",
                        "tool_calls": [{"type": "drawing_tool", "drawing_tool": {"outputs": [{"image": image_url}]}}],
                    },
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "See [Tomato guide](https://example.org/tomatoes). "},
                }
            ],
        },
        {
            "id": "a1",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "<img src=x onerror=alert(1)><script>alert(2)</script>"},
                }
            ],
        },
        {
            "id": "a1",
            "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            "status": "completed",
        },
    ]
    page.goto("/#/chat")
    page.locator("main h1").wait_for(state="attached")
    version = re.search(r"/app/([0-9a-f]{12})/", page.content()).group(1)  # type: ignore[union-attr]
    state = page.evaluate(
        """async ([version, chunks]) => {
            const { applyChunk, finish, newTurn } = await import(`/app/${version}/chat/transcript.js`);
            const { turnElement, updateTurn } = await import(`/app/${version}/chat/render.js`);
            const turn = newTurn();
            const el = turnElement();
            el.id = 'fixture';
            document.querySelector('.transcript').append(el);
            for (const chunk of chunks) { applyChunk(turn, chunk); updateTurn(el, turn); }
            finish(turn); updateTurn(el, turn);
            return { parts: turn.parts.map(p => p.kind === 'tool' ? [p.type, p.input, p.outputs.map(o => o.logs || o.title || 'image')] : [p.kind]), ids: turn.ids, status: turn.status };
        }""",
        [version, chunks],
    )
    assert state["parts"] == [
        ["web_browser", 'search("tomato sun")', ["Tomato guide"]],
        ["code_interpreter", "print(1)", ["1\n"]],
        ["code_interpreter", "print(2)", ["2\n"]],
        ["drawing_tool", "a red tomato", ["image"]],
        ["text"],
    ]
    assert state["ids"]["conversation_id"] == "conv1" and state["status"] == "completed"
    answer = page.locator("#fixture")
    source = answer.locator("details.tool-web_browser ol.sources a")
    assert source.get_attribute("href") == "https://example.org/tomatoes" and source.inner_text() == "Tomato guide"
    assert source.get_attribute("rel") == "noopener noreferrer"
    image = answer.locator("details.tool-drawing_tool img.generated")
    page.wait_for_function("() => document.querySelector('#fixture img.generated')?.naturalWidth === 1")
    assert (image.get_attribute("src") or "").startswith("blob:")  # fetched with the key, not a bare link
    assert answer.locator(".text a[href='https://example.org/tomatoes']").count() == 1  # a citation link
    assert answer.locator(".text script, .text img").count() == 0  # markup from the model stays text
    assert "<script>alert(2)</script>" in answer.locator(".text").inner_text()
    screenshot(page, "tool-panels")


def test_urls_a_tool_returns_reach_href_and_src_only_when_safe(page: Any) -> None:
    outputs = {
        "web_browser": [{"title": "Bad", "link": "javascript:alert(1)"}, {"title": "Good", "link": "https://ok.test/"}],
        "drawing_tool": [{"image": "javascript:alert(2)"}],
        "code_interpreter": [{"type": "file", "file": "data:text/html,<script>alert(3)</script>"}],
    }
    chunks = [
        {
            "id": "u1",
            "choices": [
                {"index": 0, "delta": {"role": "tool", "tool_calls": [{"type": kind, kind: {"outputs": items}}]}}
            ],
        }
        for kind, items in outputs.items()
    ]
    page.goto("/#/chat")
    page.locator("main h1").wait_for(state="attached")
    version = re.search(r"/app/([0-9a-f]{12})/", page.content()).group(1)  # type: ignore[union-attr]
    page.evaluate(
        """async ([version, chunks]) => {
            const { applyChunk, finish, newTurn } = await import(`/app/${version}/chat/transcript.js`);
            const { turnElement, updateTurn } = await import(`/app/${version}/chat/render.js`);
            const turn = newTurn();
            const el = turnElement();
            el.id = 'unsafe';
            document.querySelector('.transcript').append(el);
            for (const chunk of chunks) { applyChunk(turn, chunk); updateTurn(el, turn); }
            finish(turn); updateTurn(el, turn);
        }""",
        [version, chunks],
    )
    answer = page.locator("#unsafe")
    hrefs = [a.get_attribute("href") for a in answer.locator("a").all()]
    assert hrefs == ["https://ok.test/"]
    assert answer.locator("img").count() == 0
    assert "javascript:alert(2)" in answer.inner_text() and "Bad" in answer.inner_text()


def test_a_malformed_fragment_shows_the_default_page(page: Any) -> None:
    page.goto("/#/chat/%")
    page.get_by_label("Message", exact=True).wait_for()
    assert "Something went wrong" not in page.locator("main").inner_text()


def test_keyboard_reaches_the_skip_link_the_navigation_and_the_composer(page: Any) -> None:
    page.goto("/#/chat")
    page.get_by_label("Message", exact=True).wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"  # past the header, into the page
    page.goto("/#/console")
    page.get_by_role("heading", name="Console").wait_for()
    page.locator("#nav a", has_text="Knowledge").focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Knowledge bases").wait_for()
    assert page.evaluate("() => document.activeElement.id") == "main"  # focus follows the navigation
    assert page.locator("#nav a[aria-current='page']").inner_text() == "Knowledge"
