"""With authentication off (a loopback bind, the default), the web app goes straight in as the local account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ..integration.conftest import write_catalog
from ..integration.server import RunningServer
from .conftest import screenshot

# No real model: this module only checks how the app opens, so its server starts in a second.
CATALOG = """
[[models]]
id = "echo"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "Hello from the script."
"""


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("web-open")
    running = RunningServer(models_file=write_catalog(tmp / "models.toml", CATALOG), log=tmp / "server.log")
    yield running
    running.stop()


def test_no_sign_in_when_auth_is_off(browser: Any, open_server: RunningServer) -> None:
    context = browser.new_context(base_url=open_server.url, viewport={"width": 1024, "height": 700})
    page = context.new_page()
    page.goto("/#/console")
    page.get_by_role("heading", name="Console").wait_for()
    assert page.locator("#nav").is_visible()
    assert page.get_by_role("button", name="Sign out").is_hidden()  # nothing to sign out of
    assert "local" in page.locator("#who").inner_text()
    page.goto("/#/signin")
    page.locator(".chat-layout").wait_for()  # the sign-in page sends a signed-in visitor to the chat
    page.get_by_label("Message", exact=True).fill("Hi")
    page.get_by_label("Message", exact=True).press("Enter")
    page.locator("article.turn.assistant .parts[aria-busy='false']").wait_for()
    assert page.locator("article.turn.assistant .text").inner_text() == "Hello from the script."
    screenshot(page, "auth-off-chat")
    context.close()
