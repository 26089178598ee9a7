"""Is a component up? An HTTP(S) GET that answers 200."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request


def answers_ok(url: str) -> bool:
    """True when url answers 200 within 2 s (certificates are not checked)."""
    context = ssl.create_default_context()
    # The components serve self-signed or local-CA certificates; this only asks "are you up?".
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
