from __future__ import annotations

from openglm.engines.base import GenerationRequest, SamplingParams
from openglm.engines.remote import completion_body


def test_grammar_field_may_be_nested() -> None:
    request = GenerationRequest("p", SamplingParams(temperature=0.0), 5, grammar='root ::= "x"')
    assert completion_body(request, "m", "grammar")["grammar"] == 'root ::= "x"'
    nested = completion_body(request, "m", "structured_outputs.grammar")
    assert nested["structured_outputs"] == {"grammar": 'root ::= "x"'}
    assert nested["temperature"] == 0.0 and nested["max_tokens"] == 5 and nested["stream"] is True


def test_a_lazy_grammar_is_not_sent() -> None:
    """An upstream would apply it from the first token and force a call on every reply."""
    lazy = GenerationRequest("p", SamplingParams(), 5, grammar='root ::= "x"', grammar_triggers=("(x)$",))
    assert "grammar" not in completion_body(lazy, "m", "grammar")
