"""PII and secrets: every kind found and redacted, look-alikes left alone."""

from __future__ import annotations

import pytest

from langdeploy.guards import GuardContext, GuardPipeline
from langdeploy.guards.pii import PIIGuard, PIIOptions, find_pii, iban_ok, luhn_ok
from langdeploy.guards.secrets import SecretsGuard, find_secrets


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.category, text[f.start : f.end]) for f in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to ada.l@example.co.uk today", "email", "ada.l@example.co.uk"),
        ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
        ("Telefon: 030 1234567", "phone", "030 1234567"),
        ("(212) 555-0199 is the desk", "phone", "(212) 555-0199"),
        ("card 4111 1111 1111 1111 exp", "card", "4111 1111 1111 1111"),
        ("amex 3714-496353-98431", "card", "3714-496353-98431"),
        ("IBAN DE89 3704 0044 0532 0130 00 ok", "iban", "DE89 3704 0044 0532 0130 00"),
        ("ssn 078-05-1120", "ssn", "078-05-1120"),
        ("NINO AB123456C", "national_id", "AB123456C"),
        ("DNI 12345678Z", "national_id", "12345678Z"),
        ("host 192.168.10.1 down", "ipv4", "192.168.10.1"),
        ("host 2001:db8::8a2e:370:7334 down", "ipv6", "2001:db8::8a2e:370:7334"),
    ],
)
def test_each_pii_kind_is_found(text: str, kind: str, value: str) -> None:
    assert (kind, value) in kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "order #4829-1173-5520 shipped",
        "ISBN 978-3-16-148410-0",
        "python 3.11.4 and v1.2.3.4",
        "version 10.0.19041.1",
        "meeting on 2024-03-15 at 10:30:15",
        "tracking 1Z999AA10123456784",
        "USPS 9400 1000 0000 0000 0000 00",
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum",
        "SSN 000-12-3456 is not valid",
        "MAC 00:1A:2B:3C:4D:5E",
        "call me in 5 minutes",
        "",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert kinds(text) == []


def test_values_far_apart_in_long_prose_are_all_found() -> None:
    """The digit patterns search only near digits: values at the edges of a long text, with
    their context words well before the digits, are still found whole."""
    prose = "The quarterly review covers logistics, staffing and feedback. " * 40
    text = (
        "NINO AB 12 34 56 C. "
        + prose
        + "My social security number is: 078051120."
        + prose
        + "card 4111 1111 1111 1111"
    )
    assert sorted(kinds(text)) == [
        ("card", "4111 1111 1111 1111"),
        ("national_id", "AB 12 34 56 C"),
        ("ssn", "078051120"),
    ]


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_redaction_is_typed_and_consistent_within_a_request() -> None:
    guard = PIIGuard()
    ctx = GuardContext("input")
    text = "a@example.com, b@example.com, a@example.com, +33 6 12 34 56 78"
    result = guard.check(text, ctx)
    assert result.allowed
    assert result.text == "<EMAIL_1>, <EMAIL_2>, <EMAIL_1>, <PHONE_1>"
    assert ctx.redactions.restore(result.text) == text
    assert {v.category for v in result.violations} == {"email", "phone"}
    assert all(v.message and "example" not in v.message for v in result.violations)


def test_kinds_option_and_block_action() -> None:
    only_email = PIIGuard(PIIOptions(kinds=["email"]))
    assert only_email.check("ip 10.0.0.1", GuardContext("input")).violations == []
    blocker = PIIGuard(action="block")
    result = blocker.check("mail x@example.org", GuardContext("input"))
    assert not result.allowed and result.text == "mail x@example.org"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("key AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "github_token"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
        ("xoxb-2048-4096-aB3dE5fG7hJ9kL", "slack_token"),
        ("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "google_api_key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "jwt"),
        ("postgres://admin:S3cr3tPa55w0rd@db:5432/app", "url_credentials"),
        ('db_password = "Xk9#mQ2!vR7$pL4w"', "key_value_secret"),
        ("client_secret: 8f3a9c2e71b64d05a9e8f7c6b5a4d3e2", "key_value_secret"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "private_key"),
    ],
)
def test_each_secret_kind_is_found(text: str, category: str) -> None:
    assert category in {f.category for f in find_secrets(text)}


@pytest.mark.parametrize(
    "text",
    [
        "api_key = os.environ['OPENAI_API_KEY']",
        "API_KEY=YOUR_API_KEY",
        "password: <your password here>",
        "the token limit is 4096",
        "token=abc",  # too short
        "password = aaaaaaaaaaaa",  # no entropy
        "The key to success is consistency.",
    ],
)
def test_secret_look_alikes_are_left_alone(text: str) -> None:
    assert find_secrets(text) == []


def test_secrets_redact_keeps_the_key_name() -> None:
    result = SecretsGuard().check('token = "Zq8Lx2Vb7Nc4Md9K"', GuardContext("output"))
    assert result.text == 'token = "<SECRET_1>"'


def test_pipeline_redacts_everything_in_one_pass() -> None:
    pipeline = GuardPipeline("input", [SecretsGuard(), PIIGuard()])
    text = "mail a@example.com key AKIAIOSFODNN7EXAMPLE card 5555555555554444"
    out = pipeline.run(text).text
    assert "a@example.com" not in out and "AKIA" not in out and "5555" not in out
