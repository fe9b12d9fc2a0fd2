"""Dialogue modules added by later features register here (patrols, leave, statistics …)."""
from . import (  # noqa: F401
    leave,
    link,  # noqa: F401
    patrol,
    stats,
)
