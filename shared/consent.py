"""What a client's consent allows (issue 19), the one rule feedback (which refuses a link) and
notify (which plans invitations) both follow. Pure.

Scopes: ``feedback_invitations`` (links to the client and, through the client's episodes, to the
people around them), ``significant_others`` (contact with the partners and family members named
in the client's episodes), ``aggregates`` (the client's data in the network's figures). A scope
never recorded holds neither way: nothing agreed here, nothing withdrawn (notify's contact
preferences still decide whether a message is sent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

SCOPES: Final = ("feedback_invitations", "significant_others", "aggregates")
SIGNIFICANT_OTHERS: Final = frozenset({"partner", "family"})


def may_invite(role: str, consents: Mapping[str, bool]) -> bool:
    """Whether a member of a client's episode in ``role`` may be asked for feedback, given what
    the client consented to (scope → granted, the latest recording of each)."""
    if consents.get("feedback_invitations") is False:
        return False
    return not (role in SIGNIFICANT_OTHERS and consents.get("significant_others") is False)
