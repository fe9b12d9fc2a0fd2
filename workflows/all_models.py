"""Imports every module that defines tables, so the metadata is complete."""

from . import care_models, channel_models, models, rollup  # noqa: F401
from .routines import models as routines_models  # noqa: F401
