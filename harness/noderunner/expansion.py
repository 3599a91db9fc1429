"""``$(VAR)`` references in env values, command and args, expanded the way the kubelet does.

``$(NAME)`` becomes the value of ``NAME`` when it is defined and is kept as written when it is
not; ``$$`` is an escaped ``$`` (so ``$$(NAME)`` yields the literal ``$(NAME)``); a ``$``
followed by anything else, an unclosed ``$(``, or a ``$`` at the very end is kept verbatim.
Shell syntax such as ``$NAME`` or ``${NAME}`` is not touched: that is for a shell to expand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand every ``$(NAME)`` in ``text`` whose ``NAME`` is in ``variables``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 == n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            out.append(variables.get(name, f"$({name})"))
            i = close + 1
        else:
            out.append(char + following)
            i += 2
    return "".join(out)


def expand_all(items: Sequence[str], variables: Mapping[str, str]) -> list[str]:
    """Expand each element of a command or args list."""
    return [expand(item, variables) for item in items]
