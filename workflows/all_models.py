"""Imports every module that defines tables, so the metadata is complete."""

from . import channel_models, models, rollup, wechat_models  # noqa: F401
from .routines import models as routines_models  # noqa: F401
