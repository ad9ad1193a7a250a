/* The streams the server knows, as data: names, fields, descriptions and a sliding window of
 * points per stream. No DOM here; the widgets that draw streams subscribe:
 *   AnomalyWatch.streams.on('added', fn)    fn(stream)          a stream seen for the first time
 *   AnomalyWatch.streams.on('changed', fn)  fn(stream)          its window or latest point changed
 *   AnomalyWatch.streams.on('points', fn)   fn(stream, points)  new points arrived (live or fetched)
 *   AnomalyWatch.streams.on('info', fn)     fn(stream)          its description or counts changed
 *   AnomalyWatch.streams.on('status', fn)   fn(body)            a fresh GET /api/status answer
 *
 * GET /api/status lists the streams; a stream's stored window (GET /api/data/<s>?limit=60) is
 * fetched only once a widget watches it (a chart on screen), so a thousand streams cost a
 * thousand tiny objects, not a thousand requests. Live ticks feed every stream's window.
 * Points are de-duplicated by their database id, so a replay after a reconnect and the
 * re-fetch that fills the gap can overlap freely.
 */
(function (AW) {
  'use strict';

  var isNum = AW.fmt.isNum;

  var WINDOW_POINTS = 60;
  var STATUS_EVERY_MS = 10000;

  var bus = AW.emitter();
  var streams = new Map(); // name -> stream
  var statusTimer = null;
  // Windows are fetched only once the live connection is open: points produced between the
  // fetch and the connection would otherwise be missed (the other order only duplicates them).
  var windowsEnabled = false;

  function create(name, fields, info) {
    var stream = {
      name: name,
      fields: fields.slice(),
      info: info || {},
      points: [],           // window of point objects, oldest first
      ids: new Set(),       // ids in the window, to drop duplicates cheaply
      latest: null,
      version: 0,           // bumped on every change, so a chart knows when to redraw
      watchers: 0,          // widgets drawing this stream; its stored window is fetched for them
      windowState: 'none'   // none | loading | loaded
    };
    streams.set(name, stream);
    bus.emit('added', stream);
    return stream;
  }

  /** The stream called name, created (as a user stream unless info says otherwise) when new. */
  function ensure(name, fields, info) {
    var stream = streams.get(name);
    if (stream) return stream;
    var names = Array.isArray(fields) && fields.length ? fields : ['value'];
    return create(name, names, info || { kind: 'user' });
  }

  function isBuiltin(stream) { return stream.info.kind === 'builtin'; }

  function setInfo(stream, info) {
    stream.info = info || {};
    bus.emit('info', stream);
  }

  function outOfOrder(p, last) {
    return last && (p.timestamp < last.timestamp || (p.timestamp === last.timestamp && p.id < last.id));
  }

  /** Adds points to a stream's window; returns the points that were new. */
  function addPoints(stream, points) {
    var added = [];
    var unordered = false;
    points.forEach(function (p) {
      if (!p || !isNum(p.timestamp) || stream.ids.has(p.id)) return;
      unordered = unordered || outOfOrder(p, stream.points[stream.points.length - 1]);
      stream.points.push(p);
      stream.ids.add(p.id);
      added.push(p);
      if (!stream.latest || p.timestamp >= stream.latest.timestamp) stream.latest = p;
    });
    if (!added.length) return added;
    if (unordered) {
      // Points that arrive out of order (gap fill after a reconnect) are sorted in.
      stream.points.sort(function (a, b) { return (a.timestamp - b.timestamp) || (a.id - b.id); });
    }
    while (stream.points.length > WINDOW_POINTS) stream.ids.delete(stream.points.shift().id);
    stream.version += 1;
    bus.emit('points', stream, added);
    bus.emit('changed', stream);
    return added;
  }

  /** Makes sure a known anomalous point is marked in the window (anomaly event before/after tick). */
  function markAnomaly(stream, point) {
    var existing = null;
    for (var i = stream.points.length - 1; i >= 0; i -= 1) {
      if (stream.points[i].id === point.id) { existing = stream.points[i]; break; }
    }
    if (!existing) return addPoints(stream, [point]).length > 0;
    if (existing.is_anomaly && (typeof point.alert !== 'boolean' || existing.alert === point.alert)) return false;
    existing.is_anomaly = true;
    existing.severity = point.severity;
    if (typeof point.alert === 'boolean') existing.alert = point.alert;
    stream.version += 1;
    bus.emit('changed', stream);
    return true;
  }

  /** Fetches the stored window of a stream (again, with force, e.g. after a reconnect). */
  function loadWindow(stream, force) {
    if (stream.windowState === 'loading' || (stream.windowState === 'loaded' && !force)) {
      return Promise.resolve();
    }
    stream.windowState = 'loading';
    return AW.api('/api/data/' + encodeURIComponent(stream.name) + '?limit=' + WINDOW_POINTS)
      .then(function (body) {
        stream.windowState = 'loaded';
        if (body && Array.isArray(body.points)) addPoints(stream, body.points);
      })
      .catch(function () {
        stream.windowState = 'none'; // the live stream and the next resync fill in
      });
  }

  /** A widget starts drawing a stream: its window is fetched if the page does not have it yet. */
  function watch(stream) {
    stream.watchers += 1;
    return windowsEnabled ? loadWindow(stream, false) : Promise.resolve();
  }

  /** Called once the live connection is open: fetch the windows of every watched stream. */
  function loadWindows() {
    windowsEnabled = true;
    streams.forEach(function (stream) { if (stream.watchers > 0) loadWindow(stream, false); });
  }

  function unwatch(stream) {
    stream.watchers = Math.max(0, stream.watchers - 1);
  }

  function loadStatus() {
    return AW.api('/api/status').then(function (body) {
      if (isNum(body.tick_interval_s)) AW.live.setTickInterval(body.tick_interval_s);
      (body.streams || []).forEach(function (s) {
        var stream = streams.get(s.name);
        if (!stream) create(s.name, Array.isArray(s.fields) && s.fields.length ? s.fields : ['value'], s);
        else setInfo(stream, s);
      });
      bus.emit('status', body);
      return body;
    });
  }

  function refreshStatus() {
    loadStatus().catch(function () { /* retried on the next interval */ });
  }

  /** A stream nobody listed yet appeared: ask the server about it shortly (one call for a burst). */
  function refreshStatusSoon() {
    window.clearTimeout(statusTimer);
    statusTimer = window.setTimeout(refreshStatus, 400);
  }

  function onTick(event) {
    var bySource = new Map();
    (event.points || []).forEach(function (p) {
      if (!p || typeof p.source !== 'string') return;
      if (!bySource.has(p.source)) bySource.set(p.source, []);
      bySource.get(p.source).push(p);
    });
    var unknown = false;
    bySource.forEach(function (points, name) {
      if (!streams.has(name)) unknown = true;
      addPoints(ensure(name, Object.keys(points[0].values || {})), points);
    });
    if (unknown) refreshStatusSoon();
  }

  /** After a reconnect: new streams, and the missed points of every stream on screen. */
  function resync() {
    streams.forEach(function (stream) {
      if (stream.windowState === 'loaded') stream.windowState = 'none';
    });
    loadStatus().catch(function () { return null; }).then(function () {
      streams.forEach(function (stream) { if (stream.watchers > 0) loadWindow(stream, true); });
    });
  }

  function start() {
    AW.live.on('tick', onTick);
    AW.live.on('resumed', resync);
    window.setInterval(refreshStatus, STATUS_EVERY_MS);
  }

  AW.streams = {
    WINDOW_POINTS: WINDOW_POINTS,
    all: streams,
    on: bus.on,
    get: function (name) { return streams.get(name); },
    ensure: ensure,
    isBuiltin: isBuiltin,
    addPoints: addPoints,
    markAnomaly: markAnomaly,
    watch: watch,
    loadWindows: loadWindows,
    unwatch: unwatch,
    loadStatus: loadStatus,
    refreshStatusSoon: refreshStatusSoon,
    start: start
  };
})(window.AnomalyWatch);
