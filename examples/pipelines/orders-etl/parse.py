"""Orders ETL, step 1 in Python (world warden:plugin/transformer@0.2.0).

One CSV order in (a header line and one row: Warden frames `text/csv` input that way), one JSON
object out. Columns `id`, `country` and `amount` are required; the delimiter comes from the
node's `config` (`delimiter`, default `,`). A bad row is an error, which the pipeline routes
(`on_error`).
"""

import csv
import io
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host


class WitWorld(wit_world.WitWorld):
    def transform(self, input: bytes) -> bytes:
        try:
            text = bytes(input).decode("utf-8")
        except UnicodeDecodeError as error:
            raise Err(f"not UTF-8: {error}")
        delimiter = host.config("delimiter") or ","
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
        if len(rows) != 1:
            raise Err(f"expected a header line and one row, got {len(rows)} rows")
        row = {(k or "").strip(): (v or "").strip() for k, v in rows[0].items()}
        try:
            order = {
                "id": int(row["id"]),
                "country": row["country"].upper(),
                "amount": float(row["amount"]),
            }
        except KeyError as error:
            raise Err(f"missing column {error}")
        except ValueError as error:
            raise Err(f"bad value: {error}")
        return json.dumps(order, separators=(",", ":")).encode("utf-8")
