"""A griffe extension for mkdocstrings: pkjwt's docstrings are written for reading in the code
(reST-flavoured: ``code``, :class:`~pkjwt.x.Name`, ``>>>`` examples); this turns the few
reST-isms into Markdown as the docstrings are loaded, without changing a docstring."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`~?([^`]+)`")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def markdown(text: str) -> str:
    """Roles become code spans (the last dotted part, as reST's ``~`` shows it); runs of
    ``>>>``/``...`` lines become fenced ``pycon`` blocks (Markdown reads ``>`` as a quote)."""
    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    out: list[str] = []
    in_example = False
    for line in text.split("\n"):
        prompt = _PROMPT.match(line)
        if prompt and not in_example:
            out += ["", "```pycon"]
            in_example = True
        elif not prompt and in_example:
            out.append("```")
            in_example = False
        out.append(line.strip() if prompt else line)
    if in_example:
        out.append("```")
    return "\n".join(out)


class RestToMarkdown(griffe.Extension):
    """Rewrites each loaded docstring with :func:`markdown`."""

    def on_instance(self, *, obj: griffe.Object, **_: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
