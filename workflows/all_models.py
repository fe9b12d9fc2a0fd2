"""Imports every module that defines tables, so the metadata is complete."""

from . import (  # noqa: F401
    api_models,
    care_models,
    channel_models,
    code_models,
    console_models,
    inbox_models,
    media_models,
    models,
    rollup,
    wechat_models,
)
from .routines import models as routines_models  # noqa: F401
