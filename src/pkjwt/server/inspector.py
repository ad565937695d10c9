"""The inspector page, ``GET /_inspect``: the server's recent token requests, newest first, each
with its decoded JOSE header and claims and every rule's verdict in the doctor's words (what was
expected, what came, the fix: :func:`pkjwt.doctor.explain`).

It shows what clients sent, so it is served by default only on a loopback bind
(:func:`inspector_enabled`). It never shows a signature, an assertion, a token or a form field:
the request log it reads keeps none of them. Everything a client chose is HTML-escaped, and the
page's Content-Security-Policy allows no script but its own (by hash), as a second wall.

The page is complete as served (no script needed: ``curl`` shows every verdict); a few lines of
inline script poll it every 2 s and add new requests at the top. Each process shows what it
decided: with ``--workers N``, a page shows the worker that answered it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..catalogue import CATALOGUE
from ..doctor import Explanation, explain
from ..errors import missing_extra

try:
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # a client-only install
    raise missing_extra("server", "the local authorization server", exc) from None

from .dialects import Dialect
from .recording import RecordedRequest, RequestLog

__all__ = ["KEEP", "PATH", "Inspector", "inspector_enabled", "is_loopback", "page"]

PATH = "/_inspect"
#: requests a served inspector keeps (each at a bounded size: :class:`~.recording.RequestLog`)
KEEP = 200
#: requests whose rule table is shown opened (the newest failures); the rest are a click away
_OPEN = 10

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1b1b;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}
.meta{color:#555;margin:0 0 1em}
ol{list-style:none;padding:0;margin:0}
ol:empty::before{content:"No token requests yet.";color:#555}
li{background:#fff;border:1px solid #ddd;border-left:6px solid #1e7a34;margin:0 0 .6em;
padding:.4em .8em}
li.refused{border-left-color:#b3261e}
summary{cursor:pointer}
.status{font-weight:bold}
.refused .status{color:#b3261e}
.ok .status{color:#1e7a34}
.client{font-family:monospace}
.said{margin:.3em 0;color:#333}
.parts{display:flex;gap:1em;flex-wrap:wrap}
.parts div{flex:1 1 20em;min-width:0}
pre{background:#f3f3f3;padding:.5em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;
margin:.2em 0}
h3{font-size:1em;margin:.6em 0 .2em}
table{border-collapse:collapse;width:100%}
td{vertical-align:top;padding:.15em .4em;border-top:1px solid #eee}
.mark{font-weight:bold;width:3.5em;text-align:center;color:#fff;border-radius:3px}
.v-PASS .mark{background:#1e7a34}
.v-FAIL .mark{background:#b3261e}
.v-skip .mark{background:#8a8a8a}
.v-FAIL{background:#fdf0ef}
.rule{font-family:monospace;width:3em}
.aside{color:#666}
.fix{color:#8a5300}
.note{color:#666;font-size:.9em}
"""

_SCRIPT = """
(() => {
  const list = document.getElementById("requests");
  async function poll() {
    try {
      const answer = await fetch(location.pathname, {cache: "no-store"});
      const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = doc.getElementById("requests");
      if (fresh && fresh.dataset.newest !== list.dataset.newest) {
        const known = new Set(Array.from(list.children, (e) => e.id));
        const added = Array.from(fresh.children).filter((e) => !known.has(e.id));
        list.prepend(...added.map((e) => document.importNode(e, true)));
        while (list.children.length > fresh.children.length) list.lastElementChild.remove();
        list.dataset.newest = fresh.dataset.newest;
      }
    } catch (e) { /* the server stopped: try again later */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
"""


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # nothing runs but the polling script, nothing loads but this page: escaped claims are
    # inert, and so would be a mistake in the escaping
    "content-security-policy": (
        f"default-src 'none'; script-src '{_sha256(_SCRIPT)}'; style-src '{_sha256(_STYLE)}'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches only this machine (``0.0.0.0`` and ``::`` do not)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def inspector_enabled(host: str, choice: bool | None) -> bool:
    """``--inspector`` (True) / ``--no-inspector`` (False), or by default (None) on only when
    the server is bound to a loopback address: the page shows the claims clients send."""
    return is_loopback(host) if choice is None else choice


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


def _json(members: Any) -> str:
    # ASCII only: no bidirectional or invisible characters from a claim reach the page
    return _e(json.dumps(members, indent=2, ensure_ascii=True, default=str))


def _row(seen: Explanation) -> str:
    cells = f'<td class="mark">{_e(seen.mark)}</td><td class="rule">{_e(seen.rule)}</td>'
    text = _e(seen.title)
    if seen.failed:
        text += f"<br>expected {_e(seen.expected)}<br>got {_e(seen.got)}"
        if seen.fix:
            text += f'<br><span class="fix">fix: {_e(seen.fix)}</span>'
        text += f'<br><span class="note">({_e(seen.note)})</span>'
    elif seen.aside:
        text += f' <span class="aside">{_e(seen.aside)}</span>'
    return f'<tr class="v-{_e(seen.mark)}">{cells}<td>{text}</td></tr>'


def _rules(r: RecordedRequest, dialect: Dialect) -> str:
    rows = [_row(explain(f, dialect.public_answer)) for f in r.findings]
    if not r.ok and r.rule and not any(f.rule == r.rule for f in r.findings):
        # refused before the rule table ran (the request itself, or an undecodable JWS)
        title = CATALOGUE[r.rule].title if r.rule in CATALOGUE else ""
        rows.insert(
            0,
            f'<tr class="v-FAIL"><td class="mark">FAIL</td><td class="rule">{_e(r.rule)}</td>'
            f"<td>{_e(title)}<br>{_e(r.description or '')}"
            f'<br><span class="note">({_e(r.error or "")})</span></td></tr>',
        )
    if not rows:
        return ""
    return f"<h3>rules</h3><table>{''.join(rows)}</table>"


def _entry(r: RecordedRequest, dialect: Dialect, opened: bool) -> str:
    kind = "ok" if r.ok else "refused"
    outcome = "issued" if r.ok else f"{r.error or 'refused'}" + (f" ({r.rule})" if r.rule else "")
    summary = (
        f'<time>{_when(r.at)}</time> <span class="status">{r.status}</span> '
        f'<span class="client">{_e(r.client_id or "-")}</span> {_e(outcome)}'
    )
    body = f'<p class="said">{_e(r.description)}</p>' if r.description else ""
    if r.header or r.claims:
        body += (
            '<div class="parts">'
            f"<div><h3>header (untrusted)</h3><pre>{_json(r.header)}</pre></div>"
            f"<div><h3>claims (untrusted)</h3><pre>{_json(r.claims)}</pre></div></div>"
        )
    body += _rules(r, dialect)
    open_ = " open" if opened else ""
    return (
        f'<li id="r{r.seq}" class="{kind}"><details{open_}><summary>{summary}</summary>'
        f"{body}</details></li>"
    )


def render(
    requests: Iterable[RecordedRequest], *, dialect: Dialect, profile: str, issuer: str, keep: int
) -> str:
    """The page: ``requests`` (oldest first, as the log holds them) newest first."""
    tokens = [r for r in requests if r.endpoint == "token"]
    tokens.reverse()
    items = []
    opened = 0
    for r in tokens:
        open_ = not r.ok and opened < _OPEN
        opened += open_
        items.append(_entry(r, dialect, open_))
    newest = tokens[0].seq if tokens else 0
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pkjwt inspector</title><style>{_STYLE}</style></head><body>"
        "<h1>pkjwt serve: recent token requests</h1>"
        f'<p class="meta">profile {_e(profile)} &middot; issuer {_e(issuer)} &middot; newest '
        f"first &middot; the last {keep} requests this process decided &middot; header and "
        "claims as the client sent them (never the signature, a token or a secret)</p>"
        f'<ol id="requests" data-newest="{newest}">{"".join(items)}</ol>'
        f"<script>{_SCRIPT}</script></body></html>"
    )


class Inspector:
    """The page for one server: rendered again only when a request was recorded since."""

    def __init__(
        self, log: RequestLog, *, dialect: Dialect, profile: str, issuer: str, keep: int
    ) -> None:
        self.log = log
        self.dialect = dialect
        self.profile = profile
        self.issuer = issuer
        self.keep = keep
        self._hosts = {"localhost", (urlsplit(issuer).hostname or "").lower()}
        self._cached: tuple[int, bytes] = (-1, b"")

    def allows(self, host_header: str) -> bool:
        """Whether a request's ``Host`` names this server: an IP address, ``localhost`` or the
        issuer's host. A web page that rebinds its own DNS name to 127.0.0.1 reaches the
        server under that name, and must not read the page."""
        try:
            name = urlsplit("//" + host_header).hostname if host_header else None
        except ValueError:  # "[" without its "]"
            return False
        if not name:
            return False
        if name.lower() in self._hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def body(self) -> bytes:
        seq = self.log.seq
        if self._cached[0] != seq:
            text = render(
                self.log.requests,
                dialect=self.dialect,
                profile=self.profile,
                issuer=self.issuer,
                keep=self.keep,
            )
            self._cached = (seq, text.encode())
        return self._cached[1]


async def page(request: Request) -> Response:
    inspector: Inspector = request.app.state.inspector
    if not inspector.allows(request.headers.get("host", "")):
        return Response(
            "this page answers only under the server's own name (an IP address, localhost or "
            "the issuer's host)\n",
            403,
            media_type="text/plain",
        )
    return Response(inspector.body(), headers=_HEADERS)
