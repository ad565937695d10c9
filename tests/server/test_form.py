"""The token endpoint's form parser: parse_qsl's meaning, its own refusals (R1)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from pkjwt.server.http import MAX_FORM_FIELDS, parse_form

_FORM_CHARS = st.text(alphabet="ab=&%+2AFz0._-~:/ ", max_size=60)


@given(_FORM_CHARS)
def test_parse_form_means_what_parse_qsl_means(text: str) -> None:
    reference = parse_qsl(text, keep_blank_values=True)
    names = [name for name, _ in reference]
    got = parse_form(text.encode("ascii"))
    if len(names) != len(set(names)):
        assert isinstance(got, str)
        assert "repeated" in got
    else:
        assert got == dict(reference)


def test_encoded_values_are_unquoted_and_plain_ones_kept() -> None:
    form = parse_form(
        b"grant_type=client_credentials&client_assertion_type="
        b"urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        b"&scope=a+b%20c&client_assertion=eyJ.eyJ.sig-_&empty=&bare"
    )
    assert form == {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "scope": "a b c",
        "client_assertion": "eyJ.eyJ.sig-_",
        "empty": "",
        "bare": "",
    }


def test_refusals_name_the_reason() -> None:
    assert parse_form("é=1".encode()) == "the body must be form-encoded ASCII"
    assert parse_form(b"a=1&a=2") == "parameter a repeated"
    many = "&".join(f"f{i}=1" for i in range(MAX_FORM_FIELDS + 1)).encode()
    assert parse_form(many) == "too many form fields"
    assert isinstance(
        parse_form("&".join(f"f{i}=1" for i in range(MAX_FORM_FIELDS)).encode()), dict
    )
