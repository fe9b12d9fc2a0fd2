"""Imports every module that defines tables, so the metadata is complete."""

<<<<<<< HEAD
from . import channel_models, models, rollup  # noqa: F401
=======
from . import channel_models, inbox_models, models  # noqa: F401
>>>>>>> abc1955 (Inbox for Telegram updates (not wired yet): store raw updates before confirming them, skip unreadable ones; table inbox_update, migration 0007)
from .routines import models as routines_models  # noqa: F401
