/* The alerts the page knows (one per incident, /api/incidents) and the silences (/api/silences),
 * kept current by the live connection's alert events (live.js).
 *
 *   AnomalyWatch.alerts.store.on('change', fn)   fn()          alerts or silences changed
 *   AnomalyWatch.alerts.store.on('counts', fn)   fn(counts)    {firing, pending} open alerts
 *   AnomalyWatch.alerts.store.list(state)                      alerts in a state, newest first
 *
 * Open alerts are loaded at start (the header's badge needs them on every view); resolved ones
 * when the alerts page first shows them. An alert event carries the alert as it stands, so it
 * replaces the row in place; after an outage the lists are fetched again. A stored batch of
 * events pushes only its worst alert changes (a file may open thousands), so a batch with
 * anomalies has the open alerts fetched again shortly after (once for a burst of batches).
 */
(function (AW) {
  'use strict';

  var OPEN_LIMIT = 1000;      // the API's most per call
  var RESOLVED_LIMIT = 200;
  var RELOAD_EVERY_MS = 60000; // silences that begin or end on their own change no event
  var AFTER_BATCH_MS = 2000;   // after a batch of events with anomalies: its alerts not pushed

  var bus = AW.emitter();
  var byId = new Map();
  var silences = [];
  var serverCounts = null;    // the API's open counts, when it has more open alerts than fetched
  var resolvedLoaded = false;
  var clock = 0;              // counts what the page learned: an answer is older than what came after it was asked
  var learnedAt = new Map();  // alert id -> clock when last learned

  function forget(id) {
    byId.delete(id);
    learnedAt.delete(id);
  }
  var frame = false;

  function changed() {
    if (frame) return;
    frame = true;
    window.requestAnimationFrame(function () {
      frame = false;
      bus.emit('change');
      bus.emit('counts', counts());
    });
  }

  function counts() {
    var result = { firing: 0, pending: 0 };
    byId.forEach(function (alert) {
      if (alert.state in result) result[alert.state] += 1;
    });
    if (serverCounts) {
      result.firing = Math.max(result.firing, serverCounts.firing);
      result.pending = Math.max(result.pending, serverCounts.pending);
    }
    return result;
  }

  var STATE_RANK = { pending: 0, firing: 1, resolved: 2 };

  /** How far an alert has come: an answer fetched before an event must not undo the event. */
  function progress(alert) {
    return [STATE_RANK[alert.state] || 0, alert.acknowledged_at ? 1 : 0, alert.points || 0];
  }

  function put(alert) {
    learnedAt.set(alert.id, ++clock);
    var known = byId.get(alert.id);
    if (known) {
      var a = progress(alert);
      var b = progress(known);
      for (var i = 0; i < a.length; i++) {
        if (a[i] !== b[i]) {
          if (a[i] < b[i]) return;
          break;
        }
      }
    }
    byId.set(alert.id, alert);
  }

  function loadOpen() {
    var asked = clock;
    return AW.api('/api/incidents?state=firing,pending&limit=' + OPEN_LIMIT).then(function (body) {
      var open = new Set();
      body.alerts.forEach(function (alert) { open.add(alert.id); put(alert); });
      // Open alerts no longer listed were resolved while we were away; one learned from an event
      // after the question was asked is newer than the answer (it may not have existed yet).
      byId.forEach(function (alert, id) {
        if (alert.state !== 'resolved' && !open.has(id) && learnedAt.get(id) <= asked) forget(id);
      });
      serverCounts = body.alerts.length >= OPEN_LIMIT ? body.open : null;
      changed();
    });
  }

  function loadResolved() {
    return AW.api('/api/incidents?state=resolved&limit=' + RESOLVED_LIMIT).then(function (body) {
      resolvedLoaded = true;
      body.alerts.forEach(put);
      changed();
    });
  }

  function loadSilences() {
    return AW.api('/api/silences?state=active,pending&limit=200').then(function (body) {
      silences = body.silences;
      changed();
    });
  }

  function reload() {
    var work = [loadOpen(), loadSilences()];
    if (resolvedLoaded) work.push(loadResolved());
    return Promise.all(work).catch(function () { /* shown stale; the next reload retries */ });
  }

  function list(state) {
    var items = [];
    byId.forEach(function (alert) { if (alert.state === state) items.push(alert); });
    items.sort(function (a, b) { return b.id - a.id; });
    return state === 'resolved' ? items.slice(0, RESOLVED_LIMIT) : items;
  }

  function onAlertEvent(event) {
    put(event.alert);
    changed();
    if (event.transition === 'silenced' || event.transition === 'unsilenced') loadSilences().catch(function () {});
  }

  /** An answer to an action (acknowledge, resolve) is the alert as it now stands. */
  function update(alert) {
    var known = byId.get(alert.id);
    if (known && alert.silenced_by === undefined) alert.silenced_by = known.silenced_by;
    learnedAt.set(alert.id, ++clock);
    byId.set(alert.id, alert);
    changed();
  }

  var batchReload = null;

  function onEventBatch(batch) {
    if (!batch || !batch.anomaly_count || batchReload !== null) return;
    batchReload = window.setTimeout(function () {
      batchReload = null;
      loadOpen().catch(function () { /* the next reload retries */ });
    }, AFTER_BATCH_MS);
  }

  function start() {
    AW.live.on('alert', onAlertEvent);
    AW.live.on('events', onEventBatch);
    AW.live.on('resumed', reload);
    reload();
    window.setInterval(reload, RELOAD_EVERY_MS);
  }

  AW.alerts = AW.alerts || {};
  AW.alerts.store = {
    on: bus.on,
    start: start,
    list: list,
    get: function (id) { return byId.get(id); },
    update: update,
    counts: counts,
    reload: reload,
    loadResolved: loadResolved,
    loadSilences: loadSilences,
    get silences() { return silences; },
    get resolvedLoaded() { return resolvedLoaded; }
  };
})(window.AnomalyWatch);
