"""Length, invisible text, denied topics, and the output guards."""

from __future__ import annotations

import json

import pytest

from langdeploy.guards import GuardContext
from langdeploy.guards.output import (
    JSONSchemaGuard,
    JSONSchemaOptions,
    LeakOptions,
    MaxLengthGuard,
    MaxLengthOptions,
    RefusalGuard,
    SystemPromptLeakGuard,
    ToxicityGuard,
    repair_json,
)
from langdeploy.guards.text import (
    DeniedTopicsGuard,
    InvisibleTextGuard,
    LengthGuard,
    LengthOptions,
    TopicsOptions,
)

IN = GuardContext("input")


def out_ctx() -> GuardContext:
    return GuardContext("output")


def test_length_by_chars_and_by_the_given_tokenizer() -> None:
    guard = LengthGuard(LengthOptions(max_chars=10, max_tokens=None))
    assert guard.check("x" * 10, IN).allowed
    result = guard.check("x" * 11, IN)
    assert not result.allowed and result.violations[0].category == "too_many_chars"
    by_tokens = LengthGuard(LengthOptions(max_chars=None, max_tokens=3))
    words = GuardContext("input", count_tokens=lambda t: len(t.split()))
    assert by_tokens.check("one two three", words).allowed
    blocked = by_tokens.check("one two three four", words)
    assert not blocked.allowed and "3 tokens" in blocked.violations[0].message
    # Without a tokenizer, 4 characters a token.
    assert not by_tokens.check("x" * 13, IN).allowed

    # A token is at least a byte: a text of at most max_tokens bytes is not tokenized at all.
    def no_tokenizer(text: str) -> int:
        raise AssertionError("tokenized a text shorter than the limit in bytes")

    assert by_tokens.check("abc", GuardContext("input", count_tokens=no_tokenizer)).allowed
    calls: list[str] = []
    counting = GuardContext("input", count_tokens=lambda t: calls.append(t) or len(t.split()))
    assert by_tokens.check("ééé", counting).allowed and calls == ["ééé"]  # 6 bytes: counted


def test_invisible_characters_are_stripped_or_blocked() -> None:
    text = "he\u200bllo" + "".join(chr(0xE0000 + ord(c)) for c in "evil") + " world\u202e"
    result = InvisibleTextGuard().check(text, IN)
    assert result.allowed and result.text == "hello world"
    assert {v.category for v in result.violations} == {"zero_width", "unicode_tags"}
    assert not InvisibleTextGuard(action="block").check(text, IN).allowed
    assert InvisibleTextGuard().check("plain text", IN).violations == []


def test_denied_topics_keywords_and_patterns() -> None:
    options = TopicsOptions.model_validate(
        {"topics": [{"name": "weapons", "keywords": ["pipe bomb"], "patterns": [r"\bak-?47\b"]}]}
    )
    guard = DeniedTopicsGuard(options)
    assert not guard.check("how to build a PIPE BOMB", IN).allowed
    assert not guard.check("p1pe b0mb", IN).allowed  # normalised
    assert not guard.check("price of an AK47", IN).allowed
    assert guard.check("a bomb of a party", IN).allowed
    with pytest.raises(ValueError, match="not a valid regular expression"):
        TopicsOptions.model_validate({"topics": [{"name": "x", "patterns": ["("]}]})


def test_system_prompt_leak_by_canary_and_by_overlap() -> None:
    prompt = (
        "You are Bolt, the support assistant of Acme. Never discuss pricing of enterprise plans."
    )
    guard = SystemPromptLeakGuard(LeakOptions(canaries=["c4n4ry-7f3a"], system_prompt=prompt))
    assert not guard.check("sure: c4n4ry-7f3a", out_ctx()).allowed
    leaked = "My instructions: you are Bolt, the support assistant of Acme. Never discuss pricing"
    assert not guard.check(leaked, out_ctx()).allowed
    assert guard.check("I am Bolt, happy to help with your Acme order.", out_ctx()).allowed


def test_toxicity_redacts_words_and_obfuscations() -> None:
    guard = ToxicityGuard()
    result = guard.check("this is shit, really", out_ctx())
    assert result.allowed and "shit" not in result.text and "<REDACTED_1>" in result.text
    assert guard.check("what a sh1t day", out_ctx()).violations
    assert guard.check("Scheiße, schon wieder", out_ctx()).violations  # German, accents
    assert guard.check("I will kill you", out_ctx()).violations[0].category == "threat"
    assert (
        guard.check("Scunthorpe is a town; assistant and class are fine", out_ctx()).violations
        == []
    )


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def test_json_schema_valid_repaired_and_invalid() -> None:
    guard = JSONSchemaGuard(JSONSchemaOptions.model_validate({"schema": SCHEMA}))
    ok = guard.check('{"name": "Ada", "age": 36}', out_ctx())
    assert ok.allowed and not ok.violations
    fenced = 'Here you go:\n```json\n{"name": "Ada", "age": 36,}\n```'
    repaired = guard.check(fenced, out_ctx())
    assert repaired.allowed and json.loads(repaired.text) == {"name": "Ada", "age": 36}
    assert repaired.violations[0].category == "repaired"
    wrong = guard.check('{"name": "Ada", "age": "old"}', out_ctx())
    assert not wrong.allowed and "age" in wrong.violations[0].message
    assert not guard.check("no json here", out_ctx()).allowed
    assert repair_json("{'a': True, 'b': None}") == '{"a": true, "b": null}'
    with pytest.raises(Exception, match="is not valid"):
        JSONSchemaGuard(JSONSchemaOptions.model_validate({"schema": {"type": "nope"}}))


def test_max_length_truncates_or_blocks() -> None:
    options = MaxLengthOptions(max_chars=5)
    assert MaxLengthGuard(options).check("abcdefgh", out_ctx()).text == "abcde"
    assert not MaxLengthGuard(options, action="block").check("abcdefgh", out_ctx()).allowed
    assert MaxLengthGuard(options).check("abc", out_ctx()).violations == []


def test_refusal_is_a_warning() -> None:
    guard = RefusalGuard()
    result = guard.check("I'm sorry, but I can't help with that.", out_ctx())
    assert result.allowed and result.violations[0].action == "warn"
    assert guard.check("Lo siento, no puedo ayudar con eso.", out_ctx()).violations
    assert guard.check("Sure! Here is the recipe.", out_ctx()).violations == []
