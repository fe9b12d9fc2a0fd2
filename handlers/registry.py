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
    # who may use it: None for everyone, else the roles (workflows.models.Role) that may;
    # handlers.access checks it, and /help and the menus list by it
    roles: frozenset[str] | None = None
    open_in_group: bool = False  # answered in a work group whoever sends it (/bind carries its own code)


STAFF = frozenset({"worker", "leader", "standin", "team_member", "centre_staff", "helper", "admin"})
GRID_STAFF = frozenset({"worker", "leader", "standin", "helper"})  # who keeps the 民情日记
WORKERS = frozenset({"worker"})  # who patrols and asks for leave with A/B cover
LEADERS = frozenset({"leader"})
CENTRE = frozenset({"centre_staff", "admin"})


COMMANDS: dict[str, Command] = {}
ACTIONS: dict[str, ActionHandler] = {}
FLOWS: dict[str, FlowHandler] = {}


def command(name: str, summary: str, *, private: bool = True, group: bool = False, staff_only: bool = False,
            roles: frozenset[str] | None = None, open_in_group: bool = False):
    if staff_only and roles is None:
        roles = STAFF
    def deco(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, fn, private, group, summary, roles is not None, roles, open_in_group)
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
