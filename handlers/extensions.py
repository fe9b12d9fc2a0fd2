"""Dialogue modules added by later features register here (patrols, leave, statistics …)."""
from . import leave, patrol, stats  # noqa: F401
from . import link  # noqa: F401
