"""An ETL record transform (world warden:plugin/transformer): CSV rows in, cleaned JSON Lines out.

The first row is the header. Every row is trimmed; `id` must be an integer and `amount` a
number, or the row is dropped with a warning in the call's log; `email` is lower-cased.
"""

import csv
import io
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.host import Level


class WitWorld(wit_world.WitWorld):
    def transform(self, input: bytes) -> bytes:
        try:
            text = bytes(input).decode("utf-8")
        except UnicodeDecodeError as error:
            raise Err(f"input is not UTF-8: {error}")
        rows = csv.DictReader(io.StringIO(text))
        out = []
        dropped = 0
        for number, row in enumerate(rows, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            try:
                record = {
                    "id": int(row["id"]),
                    "name": row.get("name", ""),
                    "email": row.get("email", "").lower(),
                    "amount": float(row["amount"]),
                }
            except (KeyError, ValueError) as error:
                dropped += 1
                host.log(Level.WARN, f"line {number} dropped: {error}")
                continue
            out.append(json.dumps(record, separators=(",", ":")))
        host.log(Level.INFO, f"{len(out)} record(s) out, {dropped} dropped")
        return ("\n".join(out) + "\n" if out else "").encode("utf-8")
