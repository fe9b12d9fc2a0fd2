"""Imports every module that defines tables, so the metadata is complete."""

from . import models  # noqa: F401
