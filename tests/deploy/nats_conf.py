"""Just enough of the nats-server config format to read k8s/config/nats.conf and the output of
`render_node_config`, rewrite a node's addresses, and write it back. Anything else in the file is
refused rather than guessed at, so a new construct makes the drift tests fail loudly."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_OPEN_BLOCK = re.compile(rf"^({_KEY})\s*(?::|=)?\s*\{{$")
_OPEN_LIST = re.compile(rf"^({_KEY})\s*(?::|=)\s*\[$")
_SCALAR = re.compile(rf"^({_KEY})\s*(?::|=|\s)\s*(\S.*)$")


@dataclass
class Block:
    """Ordered `key -> raw value text | list of raw texts | Block`, as written in the file."""

    items: dict[str, str | list[str] | Block] = field(default_factory=dict)

    def paths(self, prefix: str = "") -> set[str]:
        found = set()
        for key, value in self.items.items():
            found.add(prefix + key)
            if isinstance(value, Block):
                found |= value.paths(f"{prefix}{key}.")
        return found

    def render(self, indent: str = "") -> str:
        lines = []
        for key, value in self.items.items():
            if isinstance(value, Block):
                lines += [
                    f"{indent}{key} {{",
                    value.render(indent + "  ").rstrip("\n"),
                    f"{indent}}}",
                ]
            elif key == "include":  # a directive, not a setting: no colon
                lines.append(f"{indent}include {value}")
            elif isinstance(value, list):
                lines += [f"{indent}{key}: [", *(f"{indent}  {v}" for v in value), f"{indent}]"]
            else:
                lines.append(f"{indent}{key}: {value}")
        return "\n".join(lines) + "\n"


def unquote(raw: str) -> str:
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def parse(text: str) -> Block:
    root = Block()
    stack = [root]
    open_list: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        line = _strip_comment(line)
        if not line:
            continue
        if open_list is not None:
            if line == "]":
                open_list = None
            else:
                open_list.append(line.rstrip(","))
            continue
        if line == "}":
            if len(stack) == 1:
                raise ValueError(f"line {number}: unbalanced }}")
            stack.pop()
        elif match := _OPEN_BLOCK.match(line):
            block = Block()
            stack[-1].items[match.group(1)] = block
            stack.append(block)
        elif match := _OPEN_LIST.match(line):
            open_list = []
            stack[-1].items[match.group(1)] = open_list
        elif match := _SCALAR.match(line):
            stack[-1].items[match.group(1)] = match.group(2).strip()
        else:
            raise ValueError(f"line {number}: not understood: {line!r}")
    if len(stack) != 1 or open_list is not None:
        raise ValueError("unclosed block or list")
    return root


def _strip_comment(line: str) -> str:
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif not quoted and (char == "#" or line.startswith("//", i)):
            return line[:i].strip()
    return line.strip()
