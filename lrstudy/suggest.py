"""'did you mean ...?' for a misspelt key or name: the closest valid one, when one is close."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """' (did you mean `epochs`?)' for 'epoch', or '' when nothing valid is close."""
    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
