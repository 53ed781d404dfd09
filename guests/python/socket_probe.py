"""Tries to open a socket. Warden grants no network access, so it fails, and the guest reports
the failure as its error (outcome `guest_error`) without crashing anything. It targets
127.0.0.1 so that nothing would leave the machine even if a socket were granted."""

import socket

import wit_world
from componentize_py_types import Err
from wit_world.imports import host


class WitWorld(wit_world.WitWorld):
    def run(self) -> str:
        try:
            connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            connection.settimeout(2)
            connection.connect(("127.0.0.1", 80))
            connection.close()
            return "unexpected: socket connected"
        except Exception as error:
            message = f"socket failed: {type(error).__name__}: {error}"
            host.log(message)
            raise Err(message)
