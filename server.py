"""Start the anomaly detection server: gunicorn with server/gunicorn_conf.py (one gevent worker).

Usage: ``python server.py [extra gunicorn options]``; the port comes from $PORT (default 5001).
The ``server/`` package shadows this file on import, so gunicorn's target is the
factory in the package: ``server:create_app()``.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    os.chdir(ROOT)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "server" / "gunicorn_conf.py"),
            *sys.argv[1:], "server:create_app()"]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
