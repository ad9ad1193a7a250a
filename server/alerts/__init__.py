"""Alerts people act on: lifecycle, acknowledgement, silences, notifications (issue 10).

The pieces, each in its own module:

* :mod:`.lifecycle` -- anomalous points and events become one alert per incident
  of a (stream, entity, type): pending -> firing -> resolved, with ``for`` and
  ``keep_firing_for``.
* :mod:`.subjects` -- which entity an event's anomaly type concerns (the schema's
  ``[alerts.subjects]``), and a stored batch's anomalies grouped per subject.
* :mod:`.silences` -- matchers, silences.
* :mod:`.actions` -- acknowledge, resolve, silence, expire, each with its audit row.
* :mod:`.outbox` and :mod:`.receivers` -- durable notifications (webhook in
  Alertmanager's format, Slack, e-mail) and their background sender.
* :mod:`.live` -- every transition as a push event (``event: alert``), stored so that it
  replays after Last-Event-ID.
* :mod:`.schema` -- the tables (SQLite migration 7; migration 9 links push events to alerts).
* :mod:`.api` -- the HTTP routes.

:class:`.service.Alerts` joins them to the writer: it observes every stored batch of
points and of a schema's events (in the batch's transaction), returning the push events
of the transitions they cause; it is told when a stream is deleted (its alerts end) and
when a job rolls back.
"""
