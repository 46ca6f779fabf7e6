"""NATS subject matching for tests that compare subjects with documented patterns."""

from __future__ import annotations


def matches(subject: str, pattern: str) -> bool:
    """NATS subject matching, token by token (`*` one token, `>` the rest); a placeholder such
    as `<P>` in the pattern stands for any participant the subject names (`<Q>`, `<N>`)."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        placeholder = token.startswith("<") and i < len(tokens) and tokens[i].startswith("<")
        if i >= len(tokens) or not (placeholder or token in ("*", tokens[i])):
            return False
    return len(tokens) == len(wanted)
