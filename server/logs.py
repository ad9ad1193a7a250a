"""Logging: the server's messages go to a rotating file under the log folder and to stderr."""
from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
#: Loggers whose output we route; "server" is this package.
_LOGGERS = ("server", "apscheduler")


def configure_logging(log_dir: Path, level: str = "INFO") -> Path:
    """Attach (or replace) our handlers: ``<log_dir>/server.log`` (5 MB x 5) and stderr.

    Records still propagate to the root logger (which has no handler under
    gunicorn), so pytest's ``caplog`` sees them.

    Safe to call again (tests build many apps): handlers added by an earlier
    call are removed first, so no message is written twice.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "server.log"
    formatter = logging.Formatter(_FORMAT)
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=5,
                                                        encoding="utf-8")
    stderr_handler = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(formatter)
        handler._anomaly_server = True  # marks handlers this function owns
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_anomaly_server", False)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(file_handler)
        logger.addHandler(stderr_handler)
    logging.getLogger("server").setLevel(level)
    # APScheduler logs every run at INFO: at 10 ticks/s that drowns the log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return path
