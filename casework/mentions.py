"""@mentions in case comments.

A person is mentioned by the part of their sign-in address before the "@" (``@claire.martin``),
or by the whole address when two people share that part (``@claire.martin@cci.fr``). Whether a
mentioned person may be told is decided from their current rights: only someone who can see the
case can be mentioned (casework.services.comment_add)."""

import re

from django.db.models import Q

MAX_MENTIONS = 20

# After a space, a start of line or an opening sign; not inside an e-mail address or a word.
_MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9][A-Za-z0-9._+\-]*(?:@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)?)")


def handles(text: str) -> list[str]:
    """The distinct handles mentioned in `text`, lower-cased, in order of appearance."""
    found = []
    for match in _MENTION.finditer(text or ""):
        handle = match.group(1).rstrip(".-_").lower()
        if handle and handle not in found:
            found.append(handle)
    return found


def handle_of(user) -> str:
    """What to type after "@" to mention `user`."""
    return user.username.split("@", 1)[0].lower()


def handle_q(handle: str) -> Q:
    """Active users known by `handle`: their whole address, or the part before the "@"."""
    if "@" in handle:
        return Q(username__iexact=handle, is_active=True)
    return Q(username__iexact=handle, is_active=True) | Q(username__istartswith=f"{handle}@", is_active=True)
