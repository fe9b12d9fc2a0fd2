"""Errors a person can read. Their text is a message id, translated when shown."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal or a bad input, explained in words the person understands."""

    def __init__(self, msgid: str, **params: object) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params

    def render(self, t) -> str:  # t: workflows.i18n.T
        # parameters such as "问题描述" are message ids too; names and numbers pass through unchanged
        params = {k: t(v) if isinstance(v, str) else v for k, v in self.params.items()}
        return t(self.msgid, **params)


class NotAllowed(DomainError):
    pass


class NotFound(DomainError):
    pass


class WrongState(DomainError):
    pass


class Invalid(DomainError):
    pass
