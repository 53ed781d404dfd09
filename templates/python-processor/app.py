"""{{name}}: a Warden processor (world warden:plugin/processor@0.2.0).

It splits one UTF-8 record into one record per word (words are separated by whitespace); a
record without words yields none. Non-UTF-8 input is an error.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.host import Level


class WitWorld(wit_world.WitWorld):
    def process(self, input: bytes) -> list[bytes]:
        """Returns the output records; raising Err(message) fails the call with that message."""
        try:
            text = bytes(input).decode("utf-8")
        except UnicodeDecodeError:
            raise Err("input is not UTF-8")
        words = [word.encode("utf-8") for word in text.split()]
        host.log(Level.DEBUG, f"{len(words)} word(s)")
        return words
