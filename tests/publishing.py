"""Publishing a JWKS file as a deploy does (written aside, renamed over), for the tests that
rotate keys against a server re-reading its ``jwks_file``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pkjwt.keys import Key, jwks


def publish(path: Path, *keys: Key) -> None:
    aside = path.with_suffix(".tmp")
    aside.write_text(json.dumps(jwks([k.public() for k in keys])))
    os.replace(aside, path)
