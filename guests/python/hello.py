"""The hello guest of the seed `runner` world, in Python."""

import wit_world
from wit_world.imports import host


class WitWorld(wit_world.WitWorld):
    def run(self) -> str:
        host.log("hello from Python")
        return "Hello from Python!"
