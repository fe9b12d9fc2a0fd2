"""Imports every module that defines tables, so the metadata is complete."""

from . import api_models, channel_models, code_models, inbox_models, media_models, models, rollup  # noqa: F401
from .routines import models as routines_models  # noqa: F401
