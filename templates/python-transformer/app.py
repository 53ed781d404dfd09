"""{{name}}: a Warden transformer (world warden:plugin/transformer@0.2.0).

It upper-cases UTF-8 text and appends the configured `suffix`, if any. Empty or non-UTF-8 input
is an error.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.host import Level


class WitWorld(wit_world.WitWorld):
    def transform(self, input: bytes) -> bytes:
        """Returns the output bytes; raising Err(message) fails the call with that message."""
        if not input:
            raise Err("empty input")
        try:
            text = bytes(input).decode("utf-8")
        except UnicodeDecodeError:
            raise Err("input is not UTF-8")
        host.log(Level.INFO, f"upper-casing {len(input)} bytes")

        suffix = host.config("suffix") or ""
        return (text.upper() + suffix).encode("utf-8")
