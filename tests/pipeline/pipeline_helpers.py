"""Small CSV files of sessions for the pipeline tests (imported by name: this folder is on sys.path)."""
from __future__ import annotations

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment,ip_address"


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()
