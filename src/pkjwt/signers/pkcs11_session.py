"""The PKCS#11 side of an HSM key: the module, the token, one logged-in session, its errors.

PKCS#11 keeps one login state per application and token (PKCS#11 v2.40 5.6, C_Login): once
any session of this process is logged in, every session on that token is, a second C_Login
answers CKR_USER_ALREADY_LOGGED_IN whatever the PIN, and C_Logout (run when a logged-in
session closes) logs every session out. So this process holds one :class:`TokenLink` per
module and slot, logged in once, shared by every signer on that token, and used under its
lock: a session runs one operation at a time (C_SignInit .. C_Sign).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from pkcs11 import exceptions as p11

from ..errors import ConfigError, KeyLoadError, PkjwtError, SignerUnavailable
from .pkcs11_uri import PIN_ENV, Pin, Pkcs11Uri

__all__ = ["TokenLink", "explain", "link_for", "load_module"]

log = logging.getLogger("pkjwt.signers")

T = TypeVar("T")

#: the token says our session (or the login that went with it) is gone: open it again, once
SESSION_GONE: tuple[type[Exception], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.UserNotLoggedIn,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
)
#: the device failed us, not the credentials: waiting may help
_DEVICE: tuple[type[Exception], ...] = (
    p11.DeviceError,
    p11.DeviceMemory,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.GeneralError,
    p11.FunctionFailed,
    p11.FunctionCancelled,
    p11.HostMemory,
    p11.SessionCount,
)
_PIN_WRONG: tuple[type[Exception], ...] = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange)

_MODULES: dict[str, Any] = {}
_LINKS: dict[tuple[int, str, int], TokenLink] = {}
_REGISTRY = threading.Lock()


def load_module(path: str) -> Any:
    """The PKCS#11 module at ``path``, loaded and C_Initialize'd once per process."""
    real = os.path.realpath(path)
    with _REGISTRY:
        module = _MODULES.get(real)
        if module is not None:
            return module
        if not os.path.isfile(real):
            raise ConfigError(
                f"PKCS#11 module {path} does not exist",
                hint="fix module-path= in the URI or $PKJWT_PKCS11_MODULE "
                "(SoftHSM2's is /usr/lib/softhsm/libsofthsm2.so)",
            )
        try:
            module = pkcs11.lib(real)
        except p11.PKCS11Error as exc:
            raise ConfigError(
                f"PKCS#11 module {path} cannot be loaded: {exc}",
                hint="module-path must name the vendor's PKCS#11 library (.so/.dylib/.dll) "
                "built for this machine",
            ) from None
        _MODULES[real] = module
        return module


def link_for(module_path: str, uri: Pkcs11Uri) -> TokenLink:
    """The logged-in link to the one token ``uri`` names (opened now if this process has none
    yet). Errors name the tokens that exist, never a PIN."""
    module = load_module(module_path)
    try:
        _check_library(module, uri)
        slot, token = find_token(module, uri)
    except p11.PKCS11Error as exc:  # the module failed while listing its slots
        raise explain(exc, uri.token or "(any)") from None
    key = (os.getpid(), os.path.realpath(module_path), int(slot.slot_id))
    pin = uri.pin()
    with _REGISTRY:
        link = _LINKS.get(key)
        if link is None:
            link = TokenLink(slot, token, pin)
            link.open()  # raises before registering: a link that never logged in is not kept
            _LINKS[key] = link
        else:
            link.admit(pin)
    return link


def _check_library(module: Any, uri: Pkcs11Uri) -> None:
    wanted = (
        ("library-manufacturer", uri.library_manufacturer, module.manufacturer_id.strip()),
        ("library-description", uri.library_description, module.library_description.strip()),
    )
    for name, want, have in wanted:
        if want is not None and want != have:
            raise KeyLoadError(f"{uri.text}: {name} is {have!r}, not {want!r}")
    if uri.library_version is not None and tuple(module.library_version) != uri.library_version:
        have_version = ".".join(map(str, module.library_version))
        raise KeyLoadError(f"{uri.text}: library-version is {have_version}")


def _token_fields(slot: Any, token: Any) -> dict[str, object]:
    serial = token.serial
    return {
        "token": token.label.strip(),
        "manufacturer": token.manufacturer_id.strip(),
        "serial": serial.decode("ascii", "replace").strip()
        if isinstance(serial, bytes)
        else serial,
        "model": token.model.strip(),
        "slot_id": int(slot.slot_id),
        "slot_description": slot.slot_description.strip(),
        "slot_manufacturer": slot.manufacturer_id.strip(),
    }


def describe_token(slot: Any, token: Any) -> str:
    fields = _token_fields(slot, token)
    return f"{fields['token']!r} (serial {fields['serial']}, slot {fields['slot_id']})"


def find_token(module: Any, uri: Pkcs11Uri) -> tuple[Any, Any]:
    """The (slot, token) matching the URI's token attributes: exactly one, or a KeyLoadError
    that lists the initialised tokens the module has (their labels are not secret)."""
    seen: list[tuple[Any, Any]] = []
    matches: list[tuple[Any, Any]] = []
    for slot in module.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except p11.PKCS11Error:
            continue  # a slot whose token cannot be read is not one we can use
        if not token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
            continue  # SoftHSM's free slot, a blank card
        seen.append((slot, token))
        fields = _token_fields(slot, token)
        if all(getattr(uri, name) in (None, value) for name, value in fields.items()):
            matches.append((slot, token))
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(describe_token(s, t) for s, t in seen) or "none"
    if not matches:
        raise KeyLoadError(
            f"{uri.text}: no token matches",
            hint=f"tokens there: {listing}",
        )
    raise KeyLoadError(
        f"{uri.text}: {len(matches)} tokens match",
        hint=f"add token=, serial= or slot-id= to choose one of: {listing}",
    )


class TokenLink:
    """One session on one token, logged in once and reopened when the token drops it."""

    def __init__(self, slot: Any, token: Any, pin: Pin | None) -> None:
        self.slot = slot
        self.token = token
        self.label: str = token.label.strip()
        self._pin = pin
        self._session: Any = None
        #: counts the sessions opened: an object handle found in an older one is stale
        self.generation = 0
        self.lock = threading.RLock()

    def admit(self, pin: Pin | None) -> None:
        """Check a second signer's PIN against the one this link logged in with: the token
        would not (a second C_Login answers CKR_USER_ALREADY_LOGGED_IN, whatever the PIN)."""
        mine = self._pin.reveal().encode() if self._pin else b""
        theirs = pin.reveal().encode() if pin else b""
        if not hmac.compare_digest(mine, theirs):
            raise SignerUnavailable(
                f"pkcs11 token {self.label!r} refused the PIN ({_origin(pin)}): this process "
                "is logged in to it with another PIN",
                hint="a token has one user PIN: give every pkcs11: URI for it the same one",
                retryable=False,
            )

    def open(self) -> Any:
        """The session, opened and logged in now if there is none."""
        with self.lock:
            if self._session is None:
                self._session = self._login()
                self.generation += 1
                log.debug("pkcs11: session %d on token %r", self.generation, self.label)
            return self._session

    def _login(self) -> Any:
        pin: Any = self._pin.reveal() if self._pin else None
        if pin is None and self.token.flags & pkcs11.TokenFlag.PROTECTED_AUTHENTICATION_PATH:
            pin = pkcs11.PROTECTED_AUTH  # the PIN pad asks the person
        elif pin is None and self.token.flags & pkcs11.TokenFlag.LOGIN_REQUIRED:
            raise ConfigError(
                f"pkcs11 token {self.label!r} needs a PIN and none was given",
                hint=f"add ?pin-source=file:/path/to/pin to the URI or set ${PIN_ENV}",
            )
        try:
            return self.token.open(user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # something else in this process logged in to the token: its login is ours too
            return self.token.open()
        except p11.PKCS11Error as exc:
            raise explain(exc, self.label, self._pin) from None

    def drop(self) -> None:
        """Forget the session (the token said it is gone); the next call opens another."""
        with self.lock:
            session, self._session = self._session, None
        if session is not None:
            # already closed on the token's side: nothing left to release
            with contextlib.suppress(p11.PKCS11Error):
                session.close()

    def call(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation(session)`` under the lock; when the token says the session is gone,
        open a new one and run it once more. PKCS#11 errors become pkjwt's."""
        with self.lock:
            try:
                return operation(self.open())
            except SESSION_GONE as exc:
                log.info("pkcs11: token %r dropped the session (%s)", self.label, _name(exc))
                self.drop()
            except p11.PKCS11Error as exc:
                raise explain(exc, self.label, self._pin) from None
            try:
                return operation(self.open())
            except p11.PKCS11Error as exc:
                raise explain(exc, self.label, self._pin) from None


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _origin(pin: Pin | None) -> str:
    return f"from {pin.origin}" if pin else "no PIN given"


def explain(exc: Exception, label: str, pin: Pin | None = None) -> PkjwtError:
    """A PKCS#11 error as pkjwt says it: what failed, whether waiting helps, never the PIN."""
    where = f"pkcs11 token {label!r}"
    if isinstance(exc, _PIN_WRONG):
        return SignerUnavailable(
            f"{where} refused the PIN ({_origin(pin)})",
            hint="check the PIN in pin-source, pin-value or $PKJWT_PKCS11_PIN (it is never "
            "shown); more failures may lock the token",
            retryable=False,
        )
    if isinstance(exc, p11.PinLocked):
        return SignerUnavailable(
            f"{where}: the user PIN is locked",
            hint="the token's security officer must unlock or reset it; retrying cannot help",
            retryable=False,
        )
    if isinstance(exc, p11.PinExpired | p11.UserPinNotInitialized):
        return SignerUnavailable(
            f"{where}: the user PIN must be set first ({_name(exc)})",
            hint="set it with the token's admin tool (softhsm2-util, pkcs11-tool --init-pin)",
            retryable=False,
        )
    if isinstance(exc, _DEVICE):
        return SignerUnavailable(
            f"{where} failed: {_name(exc)}",
            hint="the HSM is unreachable, busy or out of resources; retry later",
            retryable=True,
        )
    return SignerUnavailable(f"{where} refused the operation: {_name(exc)}", retryable=False)
