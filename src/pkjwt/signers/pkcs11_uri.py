"""RFC 7512 ``pkcs11:`` URIs: which token, which key, which module and which PIN.

    pkcs11:token=pkjwt-test;object=nhs-int-1?module-path=/usr/lib/softhsm/libsofthsm2.so
           &pin-source=file:/run/secrets/hsm-pin

The path (``;``-separated) narrows the match: a path attribute pkjwt does not know would
narrow it in a way it cannot honour, so it is refused (RFC 7512 2.3 lets vendors add ``x-``
names; those alone are ignored). The query (``&``-separated) says how to reach the token.
Values are percent-decoded (RFC 3986 2.1); ``id`` is bytes, the others UTF-8 text.

This module needs no PKCS#11 library: the URI is checked before any module is loaded.
"""

from __future__ import annotations

import os
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from ..errors import ConfigError
from . import redact_key_uri

__all__ = ["MODULE_ENV", "PIN_ENV", "Pin", "Pkcs11Uri", "parse_pkcs11_uri"]

#: the PKCS#11 module used when the URI names none
MODULE_ENV = "PKJWT_PKCS11_MODULE"
#: the user PIN used when the URI has neither pin-value nor pin-source
PIN_ENV = "PKJWT_PKCS11_PIN"

_TEXT_PATH = (
    "token",
    "object",
    "manufacturer",
    "serial",
    "model",
    "slot-description",
    "slot-manufacturer",
    "library-manufacturer",
    "library-description",
)
_OTHER_PATH = ("id", "slot-id", "library-version", "type")
_QUERY = ("module-path", "module-name", "pin-value", "pin-source")
#: RFC 7512 2.3 object types; a signer needs the private one
_TYPES = ("private", "public", "cert", "secret-key", "data")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SEE = "RFC 7512: pkcs11:token=LABEL;object=KEY-LABEL?module-path=/path/to/module.so"


class Pin:
    """A PIN held so that it cannot be printed by accident: its ``repr`` and ``str`` are
    ``***`` (tracebacks with locals, loggers and f-strings show that), ``reveal`` gives it to
    the one call that logs in."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        #: where it came from (``pin-value``, ``pin-source file:/run/pin``, ``$PKJWT_PKCS11_PIN``)
        self.origin = origin

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<Pin *** from {self.origin}>"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI. ``text`` is the URI fit to show (any PIN replaced)."""

    text: str
    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    slot_id: int | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: tuple[int, int] | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_value: Pin | None = field(default=None, repr=False)
    pin_source: str | None = None

    def module(self) -> str:
        """The PKCS#11 module to load: ``module-path``, else ``module-name`` found in the usual
        places, else ``$PKJWT_PKCS11_MODULE``."""
        if self.module_path:
            return self.module_path
        if self.module_name:
            return _find_module(self.module_name)
        from_env = os.environ.get(MODULE_ENV)
        if from_env:
            return from_env
        raise ConfigError(
            f"{self.text}: names no PKCS#11 module",
            hint=f"add ?module-path=/path/to/module.so to the URI or set ${MODULE_ENV} "
            "(SoftHSM2's is /usr/lib/softhsm/libsofthsm2.so)",
        )

    def pin(self) -> Pin | None:
        """The user PIN: ``pin-value``, else the file ``pin-source`` names (stripped), else
        ``$PKJWT_PKCS11_PIN``, else None (a token with a PIN pad, or no login)."""
        if self.pin_value is not None:
            return self.pin_value
        if self.pin_source is not None:
            return _read_pin_file(self.pin_source)
        from_env = os.environ.get(PIN_ENV)
        if from_env:
            return Pin(from_env, f"${PIN_ENV}")
        return None

    def names(self) -> str:
        """The key as a person names it: ``token 'pkjwt-test' object 'nhs-int-1'``."""
        parts = []
        if self.token is not None:
            parts.append(f"token {self.token!r}")
        elif self.serial is not None:
            parts.append(f"token serial {self.serial!r}")
        elif self.slot_id is not None:
            parts.append(f"slot {self.slot_id}")
        return " ".join([*parts, self.key_names()])

    def key_names(self) -> str:
        """The key within its token: ``object 'nhs-int-1'``, ``id 01`` or both."""
        parts = []
        if self.object is not None:
            parts.append(f"object {self.object!r}")
        if self.id is not None:
            parts.append(f"id {self.id.hex()}")
        return " ".join(parts)


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parse a ``pkcs11:`` URI (RFC 7512). Every problem is a :class:`ConfigError` that
    names the attribute and never shows a PIN."""
    shown = _redacted(uri)
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() != "pkcs11":
        raise ConfigError(f"{shown}: not a pkcs11: URI", hint=_SEE)
    if "#" in rest:
        raise ConfigError(f"{shown}: a pkcs11: URI has no fragment ('#' must be written %23)")
    path, _, query = rest.partition("?")
    values: dict[str, object] = {"text": shown}
    for name, raw in _pairs(path, ";", shown, "path"):
        _set_once(values, name, _path_value(name, raw, shown), shown)
    for name, raw in _pairs(query, "&", shown, "query"):
        _set_once(values, name, _query_value(name, raw, shown), shown)
    if "pin_value" in values and "pin_source" in values:
        raise ConfigError(
            f"{shown}: has both pin-value and pin-source", hint="keep one (pin-source is safer)"
        )
    if "object" not in values and "id" not in values:
        raise ConfigError(
            f"{shown}: names no key",
            hint="add object=LABEL or id=%01 (the key's CKA_LABEL or CKA_ID) to the path",
        )
    return Pkcs11Uri(**values)  # type: ignore[arg-type]


def _redacted(uri: str) -> str:
    return redact_key_uri(uri)  # the one redaction rule, shared with the CLI


def _pairs(part: str, separator: str, shown: str, where: str) -> list[tuple[str, str]]:
    out = []
    for item in part.split(separator) if part else []:
        name, eq, raw = item.partition("=")
        if not eq or not name:
            raise ConfigError(
                f"{shown}: {_redacted(item)!r} in the {where} is not name=value", hint=_SEE
            )
        if _BAD_PERCENT.search(raw):
            raise ConfigError(f"{shown}: {name} has a '%' that is not followed by two hex digits")
        out.append((name.lower(), raw))
    return out


def _set_once(values: dict[str, object], name: str, value: object, shown: str) -> None:
    if value is _IGNORED:
        return
    key = name.replace("-", "_")
    if key in values:
        raise ConfigError(f"{shown}: {name} is given twice", hint="RFC 7512 allows it once")
    values[key] = value


_IGNORED = object()


def _text(name: str, raw: str, shown: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: {name} is not UTF-8 once percent-decoded") from None


def _path_value(name: str, raw: str, shown: str) -> object:
    if name in _TEXT_PATH:
        return _text(name, raw, shown)
    if name == "id":
        return unquote_to_bytes(raw)
    if name == "slot-id":
        if not raw.isdigit():
            raise ConfigError(f"{shown}: slot-id must be a decimal number, not {raw!r}")
        return int(raw)
    if name == "library-version":
        match = re.fullmatch(r"(\d+)(?:\.(\d+))?", raw)
        if match is None:
            raise ConfigError(f"{shown}: library-version must be M or M.m, not {raw!r}")
        return (int(match[1]), int(match[2] or 0))
    if name == "type":
        kind = _text(name, raw, shown)
        if kind not in _TYPES:
            raise ConfigError(f"{shown}: type={kind!r} is not an RFC 7512 object type")
        if kind != "private":
            raise ConfigError(f"{shown}: type={kind}: signing needs the private key (type=private)")
        return _IGNORED  # the only type pkjwt ever looks for
    if name.startswith("x-"):
        return _IGNORED  # vendor-specific (RFC 7512 2.3): not ours to interpret
    raise ConfigError(
        f"{shown}: path attribute {name!r} is not one pkjwt can match on",
        hint="known: " + ", ".join((*_TEXT_PATH, *_OTHER_PATH)),
    )


def _query_value(name: str, raw: str, shown: str) -> object:
    if name == "pin-value":
        return Pin(_text(name, raw, shown), "pin-value")
    if name in _QUERY:
        return _text(name, raw, shown)
    if name.startswith("x-"):
        return _IGNORED
    raise ConfigError(
        f"{shown}: query attribute {name!r} is not one pkjwt knows",
        hint="known: " + ", ".join(_QUERY),
    )


def _read_pin_file(source: str) -> Pin:
    """RFC 7512 2.3: pin-source is a URI (``file:`` here) or, as most tools accept, a path."""
    if source.startswith("|"):
        raise ConfigError("pin-source: running a command for the PIN is not supported")
    path = source
    if source.lower().startswith("file:"):
        path = source[5:]
        if path.startswith("//"):  # file://localhost/x or file:///x
            host, slash, rest = path[2:].partition("/")
            if host not in ("", "localhost"):
                raise ConfigError(f"pin-source {source}: a file on another host cannot be read")
            path = slash + rest
    try:
        value = Path(path).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"pin-source: cannot read the PIN file {path}: {why}") from None
    if not value:
        raise ConfigError(f"pin-source: the PIN file {path} is empty")
    return Pin(value, f"pin-source {path}")


def _find_module(name: str) -> str:
    """RFC 7512 module-name: the library's name without directory or suffix, looked up where
    p11-kit and distributions install PKCS#11 modules."""
    if "/" in name or "\\" in name:
        raise ConfigError(f"module-name={name!r} has a directory; use module-path for a path")
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    roots = [f"/usr/lib/{arch}", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    places = [Path(root, sub) for root in roots for sub in ("pkcs11", "softhsm", "")]
    names = [f"{name}.so", f"lib{name}.so", f"{name}.dylib", f"lib{name}.dylib"]
    for place in places:
        for candidate in names:
            if (place / candidate).is_file():
                return str(place / candidate)
    raise ConfigError(
        f"module-name={name!r}: no such PKCS#11 module",
        hint="looked in " + ", ".join(dict.fromkeys(str(p) for p in places)) + "; "
        "give module-path=/path/to/module.so instead",
    )
