"""Live recall counts injected anomalies, not their points."""
from server.episodes import EpisodeTracker


def test_an_episode_is_caught_once_and_missed_once():
    t = EpisodeTracker()
    truth = [False, True, True, True, False, True, True, False, True, False]
    flags = [False, False, True, True, False, False, False, False, False, True]
    outcomes = [t.outcome("a", x, f) for x, f in zip(truth, flags)]
    assert outcomes.count("caught") == 1 and outcomes.count("missed") == 2
    assert outcomes[2] == "caught" and outcomes[7] == "missed" and outcomes[9] == "missed"


def test_streams_are_followed_separately():
    t = EpisodeTracker()
    assert t.outcome("a", True, False) is None
    assert t.outcome("b", True, True) == "caught"
    assert t.outcome("b", False, False) is None
    assert t.outcome("a", False, False) == "missed"


def test_tick_counts_reach_the_stats(services):
    """Ticks of the real generators record caught and missed episodes in /api/stats."""
    for _ in range(400):
        services.monitor.tick()
    from server.storage import open_reader
    reader = open_reader(services.monitor.db_path)
    try:
        stats = reader.stream_stats()
    finally:
        reader.close()
    caught = sum(s["episodes_caught"] for s in stats.values())
    missed = sum(s["episodes_missed"] for s in stats.values())
    assert caught + missed > 0
