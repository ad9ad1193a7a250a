"""Ground truth by injected anomaly: an episode counts as caught once any of its points is flagged.

A detector that reports an incident once and then holds off should not look
as if it missed the incident's other points, so live recall is counted per
injected anomaly (a run of labelled points of one stream), while precision
stays per flag.
"""
from __future__ import annotations


class EpisodeTracker:
    """Follow each built-in stream's injected anomalies as points arrive, in order.

    ``outcome(stream, is_anomaly, flagged)`` returns ``"caught"`` on the first
    flagged point of an episode, ``"missed"`` on the first normal point after
    an episode that was never flagged, and None otherwise.

    >>> t = EpisodeTracker()
    >>> [t.outcome("s", truth, flag) for truth, flag in
    ...  [(False, False), (True, False), (True, True), (True, True), (False, False),
    ...   (True, False), (False, False)]]
    [None, None, 'caught', None, None, None, 'missed']
    """

    def __init__(self):
        self._open: dict[str, bool] = {}  # stream -> caught so far, while inside an episode

    def outcome(self, stream: str, is_anomaly: bool, flagged: bool) -> str | None:
        inside = stream in self._open
        if is_anomaly:
            if not inside:
                self._open[stream] = False
            if flagged and not self._open[stream]:
                self._open[stream] = True
                return "caught"
            return None
        if inside and not self._open.pop(stream):
            return "missed"
        return None
