"""Start the anomaly detection server: gunicorn with server/gunicorn_conf.py (one gevent worker).

Usage: ``python server.py [extra gunicorn options]``; the port comes from $PORT (default 5001).
The ``server/`` package shadows this file on import, so gunicorn's target is the
factory in the package: ``server:create_app()``.  gunicorn runs in this process
(as ``python -m gunicorn`` would) rather than in a second interpreter started
by exec, which would cost every start another interpreter's start-up.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    os.chdir(ROOT)
    sys.argv = ["gunicorn", "-c", str(ROOT / "server" / "gunicorn_conf.py"), *sys.argv[1:],
                "server:create_app()"]
    from gunicorn.app.wsgiapp import run

    run()


if __name__ == "__main__":
    main()
