"""Whether the Hugging Face Hub answers: asked once per process, in at most a few seconds, so an
offline machine gets one clear line instead of a minute of retries and their log noise."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

TIMEOUT_S = 3.0


def offline_by_choice() -> bool:
    """HF_HUB_OFFLINE=1: the user asked for cached copies only."""
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


@functools.cache
def reachable() -> bool:
    """A TCP connection to the Hub's host (``HF_ENDPOINT``, default huggingface.co) on port 443."""
    if offline_by_choice():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=TIMEOUT_S).close()
        return True
    except OSError:
        return False
