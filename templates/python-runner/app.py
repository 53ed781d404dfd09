"""{{name}}: a Warden runner (world local:main/runner@0.1.0). It takes no input and returns a
greeting."""

import wit_world
from wit_world.imports import host


class WitWorld(wit_world.WitWorld):
    def run(self) -> str:
        """Returns the text; raising componentize_py_types.Err(message) fails the call."""
        host.log("{{name}} is running")
        return "Hello from {{name}}!"
