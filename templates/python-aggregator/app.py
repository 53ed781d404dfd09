"""{{name}}: a Warden aggregator (world warden:plugin/aggregator@0.2.0).

Each record is an integer; `finish` emits one JSON record with how many there were and their
sum. Warden keeps the state between records and hands it to each `step` (empty for the first),
so the plugin itself remembers nothing. Here the state is the text `COUNT SUM`.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.host import Level

INTEGER = re.compile(r"[+-]?[0-9]+")


def decode_state(state: bytes) -> tuple[int, int]:
    if not state:
        return 0, 0
    try:
        count, total = bytes(state).decode("ascii").split(" ")
        return int(count), int(total)
    except ValueError:
        raise Err("bad state")


class WitWorld(wit_world.WitWorld):
    def step(self, state: bytes, input: bytes) -> bytes:
        """Returns the new state; raising Err(message) fails the run with that message."""
        count, total = decode_state(state)
        text = bytes(input).decode("utf-8", "replace").strip()
        if not INTEGER.fullmatch(text):
            raise Err(f"not an integer: {text}")
        return f"{count + 1} {total + int(text)}".encode("ascii")

    def finish(self, state: bytes) -> list[bytes]:
        """Returns the run's records."""
        count, total = decode_state(state)
        host.log(Level.INFO, f"{count} record(s)")
        return [json.dumps({"count": count, "sum": total}, separators=(",", ":")).encode("utf-8")]
