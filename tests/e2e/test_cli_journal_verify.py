"""`iotas journal verify` exits 1 and names the seq when the chain is broken: a journal row
edited straight in the database file, as someone tampering with it would."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from e2e.e2e_server import server_process
from iotas.cli.main import app


def test_verify_exits_1_at_the_edited_seq(tmp_path: Path) -> None:
    with server_process(tmp_path) as live:
        env = {"IOTAS_URL": live.url, "IOTAS_TOKEN": live.token, "IOTAS_DATA_DIR": None}

        def iotas(*args: str) -> tuple[int, str]:
            result = CliRunner().invoke(app, list(args), env=env)
            return result.exit_code, result.output

        for name in ("a", "b", "c"):
            code, out = iotas("things", "create", f"verify:{name}", "--kind", "probe")
            assert code == 0, out
        code, out = iotas("journal", "verify")
        assert code == 0 and "intact" in out, out

        db = sqlite3.connect(live.data_dir / "iotas.db")
        try:
            (seq,) = db.execute(
                "SELECT seq FROM journal WHERE record_id = 'verify:b' ORDER BY seq LIMIT 1"
            ).fetchone()
            # A change of kind in the hashed body, as a forger would make it.
            db.execute(
                "UPDATE journal SET body = replace(body, '\"probe\"', '\"forged\"') WHERE seq = ?",
                (seq,),
            )
            db.commit()
        finally:
            db.close()

        code, out = iotas("journal", "verify")
        assert code == 1, out
        assert f"broken at seq {seq}" in out
        code, out = iotas("journal", "verify", "--json")
        assert code == 1
        report = json.loads(out)
        assert report["ok"] is False and report["first_bad_seq"] == seq
