"""RFC 7512 pkcs11: URIs as pkjwt reads them: no PKCS#11 module needed, no PIN ever shown."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest

from pkjwt.errors import ConfigError, MissingExtra
from pkjwt.signers import open_signer
from pkjwt.signers.pkcs11_uri import MODULE_ENV, PIN_ENV, Pin, parse_pkcs11_uri

PIN = "8642-never-shown"


@pytest.fixture(autouse=True)
def _no_pkcs11_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODULE_ENV, raising=False)
    monkeypatch.delenv(PIN_ENV, raising=False)


def test_path_and_query_attributes_are_percent_decoded() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=My%20Token;object=nhs%2Dint%3B1;id=%01%ff%00;manufacturer=SoftHSM%20project"
        ";serial=8358ec84cf6e4714;slot-id=42;model=SoftHSM%20v2;library-version=2.6"
        "?module-path=/opt/hsm/lib%20p11.so&pin-value=12%2634"
    )
    assert uri.token == "My Token"
    assert uri.object == "nhs-int;1"
    assert uri.id == b"\x01\xff\x00"
    assert (uri.manufacturer, uri.serial, uri.slot_id) == (
        "SoftHSM project",
        "8358ec84cf6e4714",
        42,
    )
    assert (uri.model, uri.library_version) == ("SoftHSM v2", (2, 6))
    assert uri.module() == "/opt/hsm/lib p11.so"
    pin = uri.pin()
    assert pin is not None
    assert pin.reveal() == "12&34"
    assert "12&34" not in uri.text
    assert "12%2634" not in uri.text


def test_scheme_case_and_utf8_labels() -> None:
    uri = parse_pkcs11_uri("PKCS11:token=caf%C3%A9;object=cl%C3%A9")
    assert (uri.token, uri.object) == ("café", "clé")
    assert uri.names() == "token 'café' object 'clé'"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("pkcs11:token=t;object=k;colour=blue", "colour"),
        ("pkcs11:token=t;object=k?module-path=/x.so&pin-sauce=1", "pin-sauce"),
        ("pkcs11:token=t;object=k;id=%01;id=%02", "id is given twice"),
        ("pkcs11:token=t;object=k;slot-id=0x1", "slot-id"),
        ("pkcs11:token=t;object=k;library-version=two", "library-version"),
        ("pkcs11:token=t;object=k;type=public", "type=public"),
        ("pkcs11:token=t;object=k;type=key", "type='key'"),
        ("pkcs11:token=t;object=%zz", "object has a '%'"),
        ("pkcs11:token=t;object=%ff", "object is not UTF-8"),
        ("pkcs11:token=t;objectk", "not name=value"),
        ("pkcs11:token=t;object=k#frag", "no fragment"),
        ("pkcs11:token=t", "names no key"),
        ("pkcs11:token=t;object=k?pin-value=1&pin-source=/p", "both pin-value and pin-source"),
        ("pkcs11x:token=t;object=k", "not a pkcs11: URI"),
    ],
)
def test_what_pkjwt_cannot_honour_is_refused_naming_it(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_pkcs11_uri(text)
    assert names in str(caught.value)


def test_vendor_attributes_and_type_private_are_accepted() -> None:
    uri = parse_pkcs11_uri("pkcs11:token=t;object=k;type=private;x-vendor=1?x-opt=2")
    assert (uri.token, uri.object) == ("t", "k")


def test_a_pin_in_the_uri_never_reaches_an_error_or_a_repr() -> None:
    for text in (
        f"pkcs11:token=t;colour=x?pin-value={PIN}",
        f"pkcs11:token=t;object=k?pin-value={PIN}&pin-source=/p",
        f"pkcs11:token=t;object=k?pin-value={PIN}&bogus=1",
        f"pkcs11:token=t?pin-value={PIN}",
    ):
        with pytest.raises(ConfigError) as caught:
            parse_pkcs11_uri(text)
        assert PIN not in str(caught.value)
        assert PIN not in repr(caught.value)
    uri = parse_pkcs11_uri(f"pkcs11:token=t;object=k?pin-value={PIN}")
    assert PIN not in repr(uri)
    assert PIN not in repr(uri.pin())
    assert PIN not in str(uri.pin())
    assert PIN not in f"{uri.pin()}"


@pytest.mark.parametrize(
    "form", ["file:{path}", "file://{path}", "file://localhost{path}", "{path}"]
)
def test_pin_source_reads_a_file_stripped(tmp_path: Path, form: str) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(f"  {PIN}\n")
    uri = parse_pkcs11_uri(f"pkcs11:object=k?pin-source={form.format(path=pin_file)}")
    pin = uri.pin()
    assert isinstance(pin, Pin)
    assert pin.reveal() == PIN
    assert pin.origin == f"pin-source {pin_file}"


def test_a_missing_or_empty_pin_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the PIN file .*nope"):
        parse_pkcs11_uri(f"pkcs11:object=k?pin-source=file:{tmp_path}/nope").pin()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        parse_pkcs11_uri(f"pkcs11:object=k?pin-source={tmp_path}/empty").pin()
    with pytest.raises(ConfigError, match="another host"):
        parse_pkcs11_uri("pkcs11:object=k?pin-source=file://server/pin").pin()
    with pytest.raises(ConfigError, match="command"):
        parse_pkcs11_uri("pkcs11:object=k?pin-source=|cat /pin").pin()


def test_the_environment_supplies_module_and_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = parse_pkcs11_uri("pkcs11:token=t;object=k")
    assert uri.pin() is None
    with pytest.raises(ConfigError, match="names no PKCS#11 module") as caught:
        uri.module()
    assert MODULE_ENV in str(caught.value)
    monkeypatch.setenv(MODULE_ENV, "/from/env.so")
    monkeypatch.setenv(PIN_ENV, PIN)
    assert uri.module() == "/from/env.so"
    pin = uri.pin()
    assert pin is not None
    assert pin.reveal() == PIN
    assert pin.origin == f"${PIN_ENV}"
    # the URI wins over the environment
    explicit = parse_pkcs11_uri("pkcs11:object=k?module-path=/u.so&pin-value=1")
    assert explicit.module() == "/u.so"
    assert explicit.pin().reveal() == "1"  # type: ignore[union-attr]


def test_module_name_is_looked_up_or_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match="module-name='no-such-pkcs11-module'"):
        parse_pkcs11_uri("pkcs11:object=k?module-name=no-such-pkcs11-module").module()
    with pytest.raises(ConfigError, match="use module-path"):
        parse_pkcs11_uri("pkcs11:object=k?module-name=/x/y").module()


def test_a_module_that_is_not_there_is_a_config_error_naming_it() -> None:
    pytest.importorskip("pkcs11")
    with pytest.raises(ConfigError, match=r"PKCS#11 module /nowhere/libp11\.so does not exist"):
        open_signer(f"pkcs11:token=t;object=k?module-path=/nowhere/libp11.so&pin-value={PIN}")


def test_a_file_that_is_not_a_module_is_a_config_error_naming_it(tmp_path: Path) -> None:
    pytest.importorskip("pkcs11")
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"not a shared object")
    with pytest.raises(ConfigError) as caught:
        open_signer(f"pkcs11:token=t;object=k?module-path={fake}&pin-value={PIN}")
    assert f"PKCS#11 module {fake} cannot be loaded" in caught.value.message
    assert PIN not in str(caught.value)


def test_a_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def without_pkcs11(name: str, *args: object, **kw: object) -> object:
        if name.split(".")[0] == "pkcs11":
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", without_pkcs11)
    for module in ("pkjwt.signers.pkcs11", "pkjwt.signers.pkcs11_session"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingExtra) as caught:
        open_signer(f"pkcs11:token=t;object=k?module-path=/x.so&pin-value={PIN}")
    assert caught.value.hint == "pip install 'pkjwt[pkcs11]'"
    assert PIN not in str(caught.value)
