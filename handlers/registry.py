"""Where dialogue modules register their commands, button actions and conversation flows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .turn import Turn

Handler = Callable[["Turn"], Awaitable[None]]
ActionHandler = Callable[["Turn", dict[str, Any]], Awaitable[None]]
FlowHandler = Callable[["Turn", dict[str, Any]], Awaitable[None]]


@dataclass
class Command:
    name: str
    fn: Handler
    private: bool
    group: bool
    summary: str  # message id shown in the menu and /help
    staff_only: bool = False


COMMANDS: dict[str, Command] = {}
ACTIONS: dict[str, ActionHandler] = {}
FLOWS: dict[str, FlowHandler] = {}


def command(name: str, summary: str, *, private: bool = True, group: bool = False, staff_only: bool = False):
    def deco(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, fn, private, group, summary, staff_only)
        return fn

    return deco


def action(name: str):
    def deco(fn: ActionHandler) -> ActionHandler:
        ACTIONS[name] = fn
        return fn

    return deco


def flow(name: str):
    """A flow's handler gets every message while the conversation is in that flow."""

    def deco(fn: FlowHandler) -> FlowHandler:
        FLOWS[name] = fn
        return fn

    return deco
