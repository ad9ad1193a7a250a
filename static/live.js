/* The page's one live connection: Server-Sent Events from /api/stream/anomalies.
 *
 * Widgets never open their own stream; they subscribe here:
 *   AnomalyWatch.live.on('tick', fn)      fn(event)    a tick event {points: [...]} (built-in or submitted)
 *   AnomalyWatch.live.on('anomaly', fn)   fn(anomaly)  one stored anomaly
 *   AnomalyWatch.live.on('events', fn)    fn(event)    a stored batch of entity events {schema, count,
 *                                                      anomaly_count, types, anomalies: the riskiest}
 *   AnomalyWatch.live.on('alert', fn)     fn(event)    an alert transition {transition, alert}
 *   AnomalyWatch.live.on('resumed', fn)   fn()         open after a time it carried nothing (an outage,
 *                                                      or the page's load before the first open):
 *                                                      fetch what was missed
 *   AnomalyWatch.live.on('state', fn)     fn(state)    connecting | live | reconnecting | disconnected
 *
 * Resuming: the browser's own retry resends Last-Event-ID; when it gives up (HTTP error), this
 * file reconnects with exponential backoff and passes the last id as ?last_event_id=, so the
 * server replays the gap. Replayed events and re-fetched windows overlap freely: points are
 * de-duplicated by id downstream.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var isNum = AW.fmt.isNum;

  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 15000;
  var WATCHDOG_EVERY_MS = 5000;
  var LABELS = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', disconnected: 'Disconnected' };

  var bus = AW.emitter();
  var live = {
    // lostAt: since when nothing was carried. The page's first fetches run before the stream
    // opens, so what happened between them and the open is missed too: the first open resumes.
    source: null, retryTimer: null, attempt: 0, lostAt: Date.now(), lastEventAt: 0,
    state: 'connecting', lastEventId: null,
    // Set by the widgets that learn them (status and health): the watchdog needs both.
    tickInterval: null, schedulerOff: false
  };

  function setState(next, detail) {
    var box = dom.$('connection');
    live.state = next;
    if (box.dataset.state !== next) box.dataset.state = next;
    dom.setText(dom.$('connection-label'), detail ? LABELS[next] + ' ' + detail : LABELS[next]);
    bus.emit('state', next);
  }

  function streamUrl() {
    var url = '/api/stream/anomalies';
    if (live.lastEventId !== null) url += '?last_event_id=' + encodeURIComponent(live.lastEventId);
    return url;
  }

  function connect() {
    window.clearTimeout(live.retryTimer);
    if (live.source) live.source.close();
    var source = new EventSource(streamUrl());
    live.source = source;
    source.addEventListener('open', function () {
      if (live.source !== source) return;
      live.attempt = 0;
      live.lastEventAt = Date.now();
      setState('live');
      if (live.lostAt !== null) {
        live.lostAt = null;
        bus.emit('resumed');
      }
    });
    source.addEventListener('error', function () {
      if (live.source !== source) return;
      if (live.lostAt === null) live.lostAt = Date.now();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (HTTP error or bad content type): reconnect ourselves, with backoff.
        scheduleReconnect();
      } else {
        setState('reconnecting'); // the browser retries on its own and resends Last-Event-ID
      }
    });
    source.addEventListener('tick', onMessage);
    source.addEventListener('anomaly', onMessage);
    source.addEventListener('events', onMessage);
    source.addEventListener('alert', onMessage);
    source.addEventListener('message', onMessage); // events sent without an event: line
  }

  function scheduleReconnect() {
    if (live.source) live.source.close();
    live.source = null;
    var delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * Math.pow(2, live.attempt));
    delay = Math.round(delay * (0.8 + Math.random() * 0.4)); // spread many tabs apart
    live.attempt += 1;
    setState('disconnected', '· retrying in ' + Math.ceil(delay / 1000) + ' s');
    window.clearTimeout(live.retryTimer);
    live.retryTimer = window.setTimeout(function () {
      setState('reconnecting');
      connect();
    }, delay);
  }

  /** A connection that stays open but stops carrying ticks is dead too (e.g. a sleeping laptop). */
  function watchdog() {
    // Heartbeats are SSE comments, invisible to scripts: only ticks prove the stream is alive.
    if (live.state !== 'live' || !live.tickInterval || live.schedulerOff) return;
    var staleMs = Math.max(20000, live.tickInterval * 1000 * 15);
    if (Date.now() - live.lastEventAt > staleMs) {
      live.lostAt = live.lostAt || Date.now();
      scheduleReconnect();
    }
  }

  function onMessage(evt) {
    var data;
    try { data = JSON.parse(evt.data); } catch (err) { return; }
    if (!data || typeof data !== 'object') return;
    live.lastEventAt = Date.now();
    var id = Number(evt.lastEventId || data.id);
    if (isNum(id) && (live.lastEventId === null || id > live.lastEventId)) live.lastEventId = id;
    var type = data.type || evt.type;
    if (type === 'tick') bus.emit('tick', data);
    else if (type === 'anomaly' && data.anomaly) bus.emit('anomaly', data.anomaly);
    else if (type === 'events') bus.emit('events', data);
    else if (type === 'alert' && data.alert) bus.emit('alert', data);
  }

  AW.live = {
    on: bus.on,
    start: function () {
      connect();
      window.setInterval(watchdog, WATCHDOG_EVERY_MS);
    },
    /** Drop the connection and come back through the backoff path (tests and the console). */
    reconnect: function () { live.lostAt = live.lostAt || Date.now(); scheduleReconnect(); },
    setTickInterval: function (seconds) { live.tickInterval = seconds; },
    setSchedulerOff: function (off) { live.schedulerOff = Boolean(off); },
    get state() { return live.state; },
    get lastEventId() { return live.lastEventId; }
  };
})(window.AnomalyWatch);
