/* Live dashboard for the anomaly detection server.
 *
 * One file, no build step. State lives in plain objects; every update touches only the
 * DOM nodes it changed. Everything that comes from the server is inserted as text
 * (textContent / createElement), never as markup.
 *
 * Data flow: GET /api/status lists the streams, GET /api/data/<s>?limit=60 fills each
 * chart, then the SSE stream /api/stream/anomalies pushes "tick" and "anomaly" events.
 * Points are de-duplicated by their database id, so replayed events after a reconnect
 * and the re-fetch that fills the gap can overlap freely.
 */
(function () {
  'use strict';

  var WINDOW_POINTS = 60;
  var HISTORY_SIZE = 20;
  var TOAST_LIMIT = 4;
  var TOAST_MS = 7000;
  var STATS_EVERY_MS = 3000;
  var STATUS_EVERY_MS = 10000;
  // Anomalies older than this when they reach the page (replay after a reconnect) go to
  // the history quietly instead of popping up and beeping all at once.
  var QUIET_AFTER_S = 30;
  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 15000;
  var FIELD_COLORS = ['#4cc9f0', '#f7b267', '#b388ff', '#7ee0a1', '#ff8fab', '#ffd166'];
  var MARKER_COLOR = '#ff4d5e';
  var SEVERITIES = ['low', 'medium', 'high', 'critical'];

  // ---------------------------------------------------------------- DOM helpers

  function $(id) { return document.getElementById(id); }

  /** createElement with class, text and attributes; text always goes through textContent. */
  function el(tag, className, text, attrs) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    }
    return node;
  }

  function setText(node, text) {
    var value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // ---------------------------------------------------------------- formatting

  function isNum(v) { return typeof v === 'number' && isFinite(v); }

  function fmtValue(v) {
    if (!isNum(v)) return '—';
    var abs = Math.abs(v);
    if (abs >= 10000) return v.toLocaleString(undefined, { maximumFractionDigits: 0 });
    if (abs >= 100) return v.toLocaleString(undefined, { maximumFractionDigits: 1 });
    if (abs >= 1) return v.toLocaleString(undefined, { maximumFractionDigits: 2 });
    if (abs === 0) return '0';
    return v.toPrecision(3);
  }

  function fmtScore(v) { return isNum(v) ? v.toFixed(3) : '—'; }
  function fmtCount(v) { return isNum(v) ? v.toLocaleString() : '—'; }
  function fmtPercent(v, digits) {
    return isNum(v) ? (v * 100).toFixed(digits === undefined ? 1 : digits) + '%' : '—';
  }

  function pad2(n) { return n < 10 ? '0' + n : String(n); }

  function fmtClock(ms) {
    var d = new Date(ms);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function fmtDateTime(seconds) {
    if (!isNum(seconds)) return '—';
    var d = new Date(seconds * 1000);
    return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' }) + ' ' + fmtClock(d.getTime());
  }

  function fmtDuration(seconds) {
    if (!isNum(seconds)) return '—';
    var s = Math.floor(seconds);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function severityOf(point) {
    return SEVERITIES.indexOf(point.severity) >= 0 ? point.severity : 'low';
  }

  function unitFor(info, field) {
    if (!info || !info.units) return '';
    if (typeof info.units === 'string') return info.units;
    return typeof info.units[field] === 'string' ? info.units[field] : '';
  }

  function valuesText(point) {
    var values = point.values || {};
    var keys = Object.keys(values);
    if (keys.length === 1) return fmtValue(values[keys[0]]);
    return keys.map(function (k) { return k + ' ' + fmtValue(values[k]); }).join(' · ');
  }

  /** A one-paragraph, human explanation of a verdict, built from the detector scores. */
  function explain(point) {
    var parts = [];
    var fired = Array.isArray(point.fired) ? point.fired : [];
    if (point.warming_up) parts.push('Detectors are still warming up on this stream, so the score is provisional.');
    if (fired.length) {
      parts.push((fired.length === 1 ? 'Detector ' : 'Detectors ') + fired.join(', ') + (fired.length === 1 ? ' fired.' : ' fired.'));
    } else {
      parts.push('No detector crossed its threshold.');
    }
    var values = point.values || {};
    var expected = point.expected || {};
    Object.keys(values).forEach(function (field) {
      var range = expected[field];
      var v = values[field];
      if (!Array.isArray(range) || !isNum(range[0]) || !isNum(range[1]) || !isNum(v)) return;
      var where = v < range[0] ? 'below' : (v > range[1] ? 'above' : 'within');
      parts.push(field + ' = ' + fmtValue(v) + ' is ' + where + ' the expected range ' +
        fmtValue(range[0]) + ' – ' + fmtValue(range[1]) + '.');
    });
    return parts.join(' ');
  }

  // ---------------------------------------------------------------- API

  function ApiError(message, status) {
    this.name = 'ApiError';
    this.message = message;
    this.status = status;
  }
  ApiError.prototype = Object.create(Error.prototype);

  function api(path, options) {
    var opts = options || {};
    var headers = { Accept: 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, {
      method: opts.method || 'GET',
      headers: headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store'
    }).then(function (res) {
      return res.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (err) { body = null; }
        if (!res.ok) {
          if (res.status === 401 && window.dashboardLogin) window.dashboardLogin.require();
          var message = body && typeof body.error === 'string' ? body.error : 'HTTP ' + res.status;
          throw new ApiError(message, res.status);
        }
        return body;
      });
    }, function () {
      throw new ApiError('The server cannot be reached.', 0);
    });
  }

  // ---------------------------------------------------------------- shared state

  var state = {
    streams: new Map(),         // name -> stream view
    charts: Object.create(null),// name -> Chart (exposed for tests and the console)
    anomalies: new Map(),       // anomaly key -> anomaly object (bounded)
    configs: new Map(),         // stream -> engine config as last answered by the server
    lastEventId: null,
    tickInterval: null,
    connection: 'connecting',
    dirtyCharts: new Set(),
    frameRequested: false
  };

  // ---------------------------------------------------------------- charts

  var gridColor = 'rgba(148, 163, 204, 0.10)';
  var tickColor = '#8b97b3';

  function configureChartDefaults() {
    Chart.defaults.color = tickColor;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 11;
  }

  /** Updates are batched per animation frame: many events in one frame draw once. */
  function markDirty(view) {
    state.dirtyCharts.add(view);
    if (state.frameRequested) return;
    state.frameRequested = true;
    window.requestAnimationFrame(flushCharts);
  }

  function flushCharts() {
    state.frameRequested = false;
    state.dirtyCharts.forEach(function (view) { renderView(view); });
    state.dirtyCharts.clear();
  }

  function fieldColor(i) { return FIELD_COLORS[i % FIELD_COLORS.length]; }

  function buildSeries(view) {
    var univariate = view.fields.length === 1;
    var datasets = [];
    view.series = view.fields.map(function (field, i) {
      var axis = 'y' + i;
      var s = { field: field, axis: axis, line: null, markers: null, lo: null, hi: null };
      if (univariate) {
        // The expected range as a soft band: anomalies visibly leave it.
        s.lo = { label: field + ' expected low', data: [], yAxisID: axis, borderWidth: 0, pointRadius: 0,
          pointHitRadius: 0, fill: false, spanGaps: false, order: 3, role: 'band' };
        s.hi = { label: field + ' expected high', data: [], yAxisID: axis, borderWidth: 0, pointRadius: 0,
          pointHitRadius: 0, fill: '-1', backgroundColor: 'rgba(76, 201, 240, 0.09)', spanGaps: false,
          order: 3, role: 'band' };
        datasets.push(s.lo, s.hi);
      }
      s.line = { label: field, data: [], yAxisID: axis, borderColor: fieldColor(i),
        backgroundColor: fieldColor(i), borderWidth: 1.6, pointRadius: 0, pointHoverRadius: 3,
        tension: 0.25, spanGaps: false, order: 2, role: 'line', field: field };
      s.markers = { label: field + ' anomalies', data: [], yAxisID: axis, showLine: false,
        pointRadius: 4.5, pointHoverRadius: 7, pointHitRadius: 9, pointBackgroundColor: MARKER_COLOR,
        pointBorderColor: '#1b0b10', pointBorderWidth: 1.2, borderColor: MARKER_COLOR,
        backgroundColor: MARKER_COLOR, order: 1, role: 'marker', field: field };
      datasets.push(s.line, s.markers);
      return s;
    });
    return datasets;
  }

  function buildScales(view) {
    var scales = {
      x: {
        type: 'linear',
        grid: { color: gridColor },
        border: { display: false },
        ticks: { maxTicksLimit: 5, maxRotation: 0, autoSkip: true, callback: function (v) { return fmtClock(v); } }
      }
    };
    view.fields.forEach(function (field, i) {
      // Each field gets its own scale so a 0.2 vibration is not flattened by a 70 °C temperature;
      // only the first two scales show ticks to keep the card readable.
      scales['y' + i] = {
        type: 'linear',
        position: i === 1 ? 'right' : 'left',
        display: i < 2,
        grid: { color: gridColor, drawOnChartArea: i === 0 },
        border: { display: false },
        ticks: { maxTicksLimit: 4, color: view.fields.length > 1 ? fieldColor(i) : tickColor,
          callback: function (v) { return fmtValue(v); } }
      };
    });
    return scales;
  }

  function createChart(view) {
    var datasets = buildSeries(view);
    var chart = new Chart(view.dom.canvas, {
      type: 'line',
      data: { datasets: datasets },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        layout: { padding: { top: 4, right: 2 } },
        scales: buildScales(view),
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.dataset.role === 'line'; },
            callbacks: {
              title: function (items) { return items.length ? fmtClock(items[0].parsed.x) : ''; },
              label: function (item) {
                return ' ' + item.dataset.label + ': ' + fmtValue(item.parsed.y) + (unitFor(view.info, item.dataset.label) ? ' ' + unitFor(view.info, item.dataset.label) : '');
              }
            }
          }
        },
        onHover: function (evt, _active, c) {
          c.canvas.style.cursor = markerAt(c, evt) ? 'pointer' : 'default';
        },
        onClick: function (evt, _active, c) {
          var hit = markerAt(c, evt);
          if (hit) openDetailById(view.name, hit.id, c.canvas);
        }
      }
    });
    view.chart = chart;
    state.charts[view.name] = chart;
  }

  function markerAt(chart, evt) {
    var hits = chart.getElementsAtEventForMode(evt, 'nearest', { intersect: true }, false);
    for (var i = 0; i < hits.length; i += 1) {
      var ds = chart.data.datasets[hits[i].datasetIndex];
      if (ds.role === 'marker') return ds.data[hits[i].index];
    }
    return null;
  }

  // ---------------------------------------------------------------- stream views

  function createStreamView(name, fields, info) {
    var view = {
      name: name,
      fields: fields.slice(),
      info: info || {},
      points: [],            // window of point objects, oldest first
      ids: new Set(),        // ids in the window, to drop duplicates cheaply
      series: [],
      chart: null,
      dom: {},
      latest: null,
      needsRebuild: false
    };
    buildCard(view);
    updateStreamInfo(view, view.info);
    state.streams.set(name, view);
    createChart(view);
    onStreamAdded(view);
    return view;
  }

  function buildCard(view) {
    var card = el('article', 'chart-card');
    var head = el('header', 'chart-head');
    var titleWrap = el('div', 'chart-title-wrap');
    var title = el('h3', 'chart-title', view.name);
    var kind = el('span', 'badge badge-user', 'user');
    kind.hidden = view.info.kind !== 'user';
    titleWrap.appendChild(title);
    titleWrap.appendChild(kind);
    var status = el('span', 'chart-status', 'waiting');
    head.appendChild(titleWrap);
    head.appendChild(status);

    var desc = el('p', 'chart-desc', view.info.description || '');

    var legend = el('ul', 'chart-legend');
    var legendValues = view.fields.map(function (field, i) {
      var item = el('li', 'legend-item');
      var swatch = el('span', 'legend-swatch', null, { 'aria-hidden': 'true' });
      swatch.style.background = fieldColor(i);
      item.appendChild(swatch);
      item.appendChild(el('span', 'legend-field', field));
      var value = el('span', 'legend-value', '—');
      item.appendChild(value);
      var unit = el('span', 'legend-unit', unitFor(view.info, field));
      item.appendChild(unit);
      legend.appendChild(item);
      return { value: value, unit: unit };
    });

    var box = el('div', 'chart-box');
    var canvas = el('canvas', null, null, { role: 'img', 'aria-label': 'Live chart of ' + view.name });
    box.appendChild(canvas);

    var foot = el('footer', 'chart-foot');
    var counts = el('span', 'chart-counts', '');
    var score = el('span', 'chart-score', '');
    foot.appendChild(counts);
    foot.appendChild(score);

    card.appendChild(head);
    card.appendChild(desc);
    card.appendChild(legend);
    card.appendChild(box);
    card.appendChild(foot);

    view.dom = { card: card, title: title, kind: kind, status: status, desc: desc,
      legendValues: legendValues, canvas: canvas, counts: counts, score: score };

    var empty = $('charts-empty');
    if (empty) empty.remove();
    $('charts').appendChild(card);
  }

  function updateStreamInfo(view, info) {
    view.info = info || {};
    info = view.info;
    view.dom.kind.hidden = info.kind !== 'user';
    setText(view.dom.desc, info.description || '');
    view.fields.forEach(function (field, i) {
      setText(view.dom.legendValues[i].unit, unitFor(info, field));
    });
    if (isNum(info.points)) {
      setText(view.dom.counts, fmtCount(info.points) + ' points · ' + fmtCount(info.anomalies) + ' anomalies');
    }
  }

  function pointY(point, field) {
    var v = point.values ? point.values[field] : undefined;
    return isNum(v) ? v : null;
  }

  function pointExpected(point, field, side) {
    var range = point.expected ? point.expected[field] : null;
    return Array.isArray(range) && isNum(range[side]) && !point.warming_up ? range[side] : null;
  }

  function appendToSeries(view, point) {
    var x = point.timestamp * 1000;
    view.series.forEach(function (s) {
      var y = pointY(point, s.field);
      s.line.data.push({ x: x, y: y });
      if (s.lo) {
        s.lo.data.push({ x: x, y: pointExpected(point, s.field, 0) });
        s.hi.data.push({ x: x, y: pointExpected(point, s.field, 1) });
      }
      if (point.is_anomaly && y !== null) {
        s.markers.data.push({ x: x, y: y, id: point.id, severity: point.severity });
      }
    });
  }

  function trimWindow(view) {
    while (view.points.length > WINDOW_POINTS) {
      var gone = view.points.shift();
      view.ids.delete(gone.id);
      view.series.forEach(function (s) {
        s.line.data.shift();
        if (s.lo) { s.lo.data.shift(); s.hi.data.shift(); }
      });
    }
    var first = view.points.length ? view.points[0].timestamp * 1000 : Infinity;
    view.series.forEach(function (s) {
      while (s.markers.data.length && s.markers.data[0].x < first) s.markers.data.shift();
    });
  }

  /** Rebuilds the window from scratch; used when points arrive out of order (gap fill). */
  function rebuildSeries(view) {
    view.points.sort(function (a, b) { return (a.timestamp - b.timestamp) || (a.id - b.id); });
    if (view.points.length > WINDOW_POINTS) view.points = view.points.slice(-WINDOW_POINTS);
    view.ids = new Set(view.points.map(function (p) { return p.id; }));
    view.series.forEach(function (s) {
      // Arrays are emptied in place: Chart.js keeps references to them.
      s.line.data.length = 0;
      s.markers.data.length = 0;
      if (s.lo) { s.lo.data.length = 0; s.hi.data.length = 0; }
    });
    view.points.forEach(function (p) { appendToSeries(view, p); });
  }

  /** Adds points to a stream's window; returns true when something changed. */
  function addPoints(view, points) {
    var changed = false;
    points.forEach(function (p) {
      if (!p || !isNum(p.timestamp) || view.ids.has(p.id)) return;
      var last = view.points[view.points.length - 1];
      view.points.push(p);
      view.ids.add(p.id);
      changed = true;
      if (last && (p.timestamp < last.timestamp || (p.timestamp === last.timestamp && p.id < last.id))) {
        view.needsRebuild = true;
      } else if (!view.needsRebuild) {
        appendToSeries(view, p);
      }
      if (!view.latest || p.timestamp >= view.latest.timestamp) view.latest = p;
    });
    if (!changed) return false;
    if (view.needsRebuild) {
      view.needsRebuild = false;
      rebuildSeries(view);
    } else {
      trimWindow(view);
    }
    markDirty(view);
    return true;
  }

  /** Makes sure a known anomalous point carries its marker (anomaly event before/after tick). */
  function ensureMarker(view, point) {
    var existing = null;
    for (var i = view.points.length - 1; i >= 0; i -= 1) {
      if (view.points[i].id === point.id) { existing = view.points[i]; break; }
    }
    if (!existing) return addPoints(view, [point]);
    if (existing.is_anomaly) return false;
    existing.is_anomaly = true;
    existing.severity = point.severity;
    rebuildSeries(view);
    markDirty(view);
    return true;
  }

  function renderView(view) {
    var points = view.points;
    if (!view.chart) return;
    var scales = view.chart.options.scales;
    if (points.length) {
      scales.x.min = points[0].timestamp * 1000;
      scales.x.max = Math.max(points[points.length - 1].timestamp * 1000, scales.x.min + 1000);
    }
    if (view.fields.length === 1 && points.length) {
      // Fit the axis to the data, not to the band, so a wide early expected range cannot squash the line.
      var lo = Infinity;
      var hi = -Infinity;
      view.series[0].line.data.forEach(function (d) {
        if (d.y !== null) { if (d.y < lo) lo = d.y; if (d.y > hi) hi = d.y; }
      });
      if (lo <= hi) {
        var pad = (hi - lo) * 0.12 || Math.abs(hi) * 0.05 || 1;
        scales.y0.min = lo - pad;
        scales.y0.max = hi + pad;
      }
    }
    view.chart.update('none');

    var latest = view.latest;
    if (latest) {
      view.fields.forEach(function (field, i) {
        setText(view.dom.legendValues[i].value, fmtValue(pointY(latest, field)));
      });
      setText(view.dom.score, 'score ' + fmtScore(latest.score));
      var status = latest.warming_up ? 'warming up' : (latest.is_anomaly ? 'anomaly' : 'normal');
      setText(view.dom.status, status);
      var cls = 'chart-status status-' + status.replace(' ', '-');
      if (view.dom.status.className !== cls) view.dom.status.className = cls;
      view.dom.card.classList.toggle('is-alert', Boolean(latest.is_anomaly));
    }
  }

  function loadStreamData(view) {
    return api('/api/data/' + encodeURIComponent(view.name) + '?limit=' + WINDOW_POINTS)
      .then(function (body) {
        if (body && Array.isArray(body.points)) addPoints(view, body.points);
      })
      .catch(function () { /* the live stream and the next resync fill in */ });
  }

  // ---------------------------------------------------------------- status & stats

  function loadStatus() {
    return api('/api/status').then(function (body) {
      if (isNum(body.tick_interval_s)) state.tickInterval = body.tick_interval_s;
      var fresh = [];
      (body.streams || []).forEach(function (s) {
        var fields = Array.isArray(s.fields) && s.fields.length ? s.fields : ['value'];
        var view = state.streams.get(s.name);
        if (!view) {
          view = createStreamView(s.name, fields, s);
          fresh.push(view);
        } else {
          updateStreamInfo(view, s);
        }
      });
      renderServerCard(body, null);
      return fresh;
    });
  }

  function renderStat(id, value, sub) {
    var card = $(id);
    setText(card.querySelector('[data-role="value"]'), value);
    if (sub !== undefined) setText(card.querySelector('[data-role="sub"]'), sub);
  }

  var serverInfo = { status: null, uptime: null, health: null, schedulerOff: false };

  function renderServerCard(status, health) {
    if (status) {
      serverInfo.status = status.status;
      serverInfo.uptime = status.uptime_s;
    }
    if (health !== null) serverInfo.health = health;
    var card = $('stat-server');
    var word;
    var tone;
    if (serverInfo.health === 'unreachable') {
      word = 'Offline'; tone = 'bad';
    } else if (serverInfo.health === 'degraded' || serverInfo.status === 'degraded') {
      word = 'Degraded'; tone = 'warn';
    } else if (serverInfo.health === 'ok' || serverInfo.status === 'ok') {
      word = 'Online'; tone = 'ok';
    } else {
      word = '—'; tone = 'unknown';
    }
    var sub = serverInfo.health === 'unreachable' ? 'No answer from the server'
      : 'up ' + fmtDuration(serverInfo.uptime) + (state.tickInterval ? ' · tick ' + state.tickInterval + ' s' : '');
    renderStat('stat-server', word, sub);
    if (card.dataset.tone !== tone) card.dataset.tone = tone;
  }

  function pollStats() {
    api('/api/stats').then(function (s) {
      renderStat('stat-points', fmtCount(s.points), s.tick && isNum(s.tick.p99_ms)
        ? 'tick p99 ' + s.tick.p99_ms.toFixed(1) + ' ms' : ' ');
      renderStat('stat-anomalies', fmtCount(s.anomalies), topDetectorText(s.per_detector));
      renderStat('stat-rate', fmtPercent(s.anomaly_rate, 2));
      var t = s.truth || {};
      renderStat('stat-precision', fmtPercent(t.precision), isNum(t.tp)
        ? 'TP ' + fmtCount(t.tp) + ' · FP ' + fmtCount(t.fp) : 'flags that were injected');
      renderStat('stat-recall', fmtPercent(t.recall), isNum(t.episodes_caught)
        ? fmtCount(t.episodes_caught) + ' caught · ' + fmtCount(t.episodes_missed) + ' missed'
        : 'injected anomalies flagged');
    }).catch(function () { /* the server card says why */ });

    fetch('/health', { cache: 'no-store' }).then(function (res) {
      return res.json().then(function (body) {
        serverInfo.schedulerOff = body.scheduler_enabled === false;
        renderServerCard(null, body.status || (res.ok ? 'ok' : 'degraded'));
      });
    }).catch(function () {
      renderServerCard(null, 'unreachable');
    });
  }

  function topDetectorText(perDetector) {
    if (!perDetector) return ' ';
    var best = null;
    Object.keys(perDetector).forEach(function (name) {
      if (!best || perDetector[name] > perDetector[best]) best = name;
    });
    return best ? 'most fired: ' + best : ' ';
  }

  function refreshStatusCounts() {
    loadStatus().then(function (fresh) {
      fresh.forEach(loadStreamData);
    }).catch(function () { /* retried on the next interval */ });
  }

  // ---------------------------------------------------------------- live connection (SSE)

  var live = { source: null, retryTimer: null, attempt: 0, lostAt: null, lastEventAt: 0 };

  function setConnection(next, detail) {
    var box = $('connection');
    state.connection = next;
    if (box.dataset.state !== next) box.dataset.state = next;
    var labels = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', disconnected: 'Disconnected' };
    setText($('connection-label'), detail ? labels[next] + ' ' + detail : labels[next]);
  }

  function streamUrl() {
    var url = '/api/stream/anomalies';
    if (state.lastEventId !== null) url += '?last_event_id=' + encodeURIComponent(state.lastEventId);
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
      setConnection('live');
      if (live.lostAt !== null) {
        live.lostAt = null;
        resync();
      }
    });
    source.addEventListener('error', function () {
      if (live.source !== source) return;
      if (live.lostAt === null) live.lostAt = Date.now();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (HTTP error or bad content type): reconnect ourselves, with backoff.
        scheduleReconnect();
      } else {
        setConnection('reconnecting'); // the browser retries on its own and resends Last-Event-ID
      }
    });
    source.addEventListener('tick', onMessage);
    source.addEventListener('anomaly', onMessage);
    source.addEventListener('message', onMessage); // events sent without an event: line
  }

  function scheduleReconnect() {
    if (live.source) live.source.close();
    live.source = null;
    var delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * Math.pow(2, live.attempt));
    delay = Math.round(delay * (0.8 + Math.random() * 0.4)); // spread many tabs apart
    live.attempt += 1;
    setConnection('disconnected', '· retrying in ' + Math.ceil(delay / 1000) + ' s');
    window.clearTimeout(live.retryTimer);
    live.retryTimer = window.setTimeout(function () {
      setConnection('reconnecting');
      connect();
    }, delay);
  }

  /** A connection that stays open but stops carrying ticks is dead too (e.g. a sleeping laptop). */
  function watchdog() {
    // Heartbeats are SSE comments, invisible to scripts: only ticks prove the stream is alive.
    if (state.connection !== 'live' || !state.tickInterval || serverInfo.schedulerOff) return;
    var staleMs = Math.max(20000, state.tickInterval * 1000 * 15);
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
    if (isNum(id) && (state.lastEventId === null || id > state.lastEventId)) state.lastEventId = id;
    var type = data.type || evt.type;
    if (type === 'tick') handleTick(data);
    else if (type === 'anomaly' && data.anomaly) handleAnomaly(data.anomaly, { quiet: false });
  }

  function handleTick(event) {
    var bySource = new Map();
    (event.points || []).forEach(function (p) {
      if (!p || typeof p.source !== 'string') return;
      if (!bySource.has(p.source)) bySource.set(p.source, []);
      bySource.get(p.source).push(p);
    });
    var unknown = false;
    bySource.forEach(function (points, name) {
      var view = state.streams.get(name);
      if (!view) {
        unknown = true;
        view = createStreamView(name, Object.keys(points[0].values || {}), { kind: 'user' });
      }
      addPoints(view, points);
      points.forEach(function (p) {
        if (p.is_anomaly) rememberAnomaly(p);
      });
      if (tuning.stream === name) renderLiveScores(points[points.length - 1]);
    });
    if (unknown) refreshStatusSoon();
  }

  var statusTimer = null;
  function refreshStatusSoon() {
    window.clearTimeout(statusTimer);
    statusTimer = window.setTimeout(refreshStatusCounts, 400);
  }

  /** After a reconnect: new streams, the missed points of every chart, the missed alerts. */
  function resync() {
    loadStatus().catch(function () { return []; }).then(function () {
      state.streams.forEach(loadStreamData);
    });
    loadAlerts();
  }

  // ---------------------------------------------------------------- anomalies: history, toasts, sound

  var MAX_REMEMBERED = 600;

  function anomalyKey(a) {
    return isNum(a.id) ? 'p' + a.id : 'a' + a.anomaly_id;
  }

  function rememberAnomaly(a) {
    var key = anomalyKey(a);
    var known = state.anomalies.get(key);
    // Keep the richest copy (an anomaly event carries anomaly_id and detected_at).
    state.anomalies.set(key, known ? Object.assign({}, known, a) : a);
    if (state.anomalies.size > MAX_REMEMBERED) {
      state.anomalies.delete(state.anomalies.keys().next().value);
    }
  }

  var seenAlerts = new Set();

  function handleAnomaly(a, opts) {
    if (!a || typeof a.source !== 'string') return;
    var key = anomalyKey(a);
    rememberAnomaly(a);
    var view = state.streams.get(a.source);
    if (!view) {
      view = createStreamView(a.source, Object.keys(a.values || {}), { kind: 'user' });
      refreshStatusSoon();
    }
    ensureMarker(view, a);
    if (seenAlerts.has(key)) return;
    seenAlerts.add(key);
    // A page left open for days must not grow without bound; replays only reach back a little.
    if (seenAlerts.size > 4 * MAX_REMEMBERED) seenAlerts.delete(seenAlerts.values().next().value);
    addHistoryRow(a);
    var when = isNum(a.detected_at) ? a.detected_at : a.timestamp;
    var quiet = opts.quiet || (isNum(when) && Date.now() / 1000 - when > QUIET_AFTER_S);
    if (!quiet) queueAlert(a);
  }

  // Anomalies of one tick arrive together: they share one toast and one tone, so a busy
  // tick does not bury the page under pop-ups.
  var pendingAlerts = [];
  var alertTimer = null;
  var ALERT_BATCH_MS = 250;

  function queueAlert(a) {
    pendingAlerts.push(a);
    if (alertTimer === null) alertTimer = window.setTimeout(flushAlerts, ALERT_BATCH_MS);
  }

  function flushAlerts() {
    alertTimer = null;
    var batch = pendingAlerts;
    pendingAlerts = [];
    if (!batch.length) return;
    batch.sort(function (x, y) {
      return (SEVERITIES.indexOf(severityOf(y)) - SEVERITIES.indexOf(severityOf(x))) || ((y.score || 0) - (x.score || 0));
    });
    showToast(batch[0], batch.slice(1));
    if (window.AlertSound) window.AlertSound.play(severityOf(batch[0]));
  }

  function loadAlerts() {
    return api('/api/alerts').then(function (body) {
      var alerts = (body && body.alerts) || [];
      // Oldest first so the newest ends up on top of the list.
      alerts.slice().reverse().forEach(function (a) { handleAnomaly(a, { quiet: true }); });
    }).catch(function () { /* shown again on the next resync */ });
  }

  var historyRows = []; // [{key, sortKey, li}] newest first

  function historySortKey(a) {
    return [isNum(a.timestamp) ? a.timestamp : 0, isNum(a.id) ? a.id : 0];
  }

  function newerThan(k1, k2) {
    return k1[0] > k2[0] || (k1[0] === k2[0] && k1[1] > k2[1]);
  }

  function addHistoryRow(a) {
    var key = anomalyKey(a);
    var sortKey = historySortKey(a);
    var position = 0;
    while (position < historyRows.length && !newerThan(sortKey, historyRows[position].sortKey)) position += 1;
    if (position >= HISTORY_SIZE) return;

    var li = el('li', 'history-item');
    var button = el('button', 'history-row', null, { type: 'button' });
    var sev = severityOf(a);
    button.appendChild(el('span', 'sev sev-' + sev, sev));
    var main = el('span', 'history-main');
    main.appendChild(el('span', 'history-stream', a.source));
    main.appendChild(el('span', 'history-values', valuesText(a)));
    button.appendChild(main);
    var meta = el('span', 'history-meta');
    meta.appendChild(el('time', 'history-time', fmtClock(a.timestamp * 1000)));
    meta.appendChild(el('span', 'history-score', 'score ' + fmtScore(a.score)));
    button.appendChild(meta);
    button.setAttribute('aria-label', sev + ' anomaly on ' + a.source + ' at ' + fmtClock(a.timestamp * 1000) + ', open details');
    button.addEventListener('click', function () { openDetail(state.anomalies.get(key) || a, button); });
    li.appendChild(button);

    var list = $('history-list');
    var before = historyRows[position] ? historyRows[position].li : null;
    list.insertBefore(li, before);
    historyRows.splice(position, 0, { key: key, sortKey: sortKey, li: li });
    while (historyRows.length > HISTORY_SIZE) {
      historyRows.pop().li.remove();
    }
    if (position === 0 && historyRows.length > 1) {
      li.classList.add('is-new');
    }
    $('history-empty').hidden = historyRows.length > 0;
    setText($('history-count'), historyRows.length);
  }

  function showToast(a, others) {
    var sev = severityOf(a);
    var key = anomalyKey(a);
    var toast = el('div', 'toast sev-border-' + sev, null, { role: 'status' });
    var body = el('button', 'toast-body', null, { type: 'button' });
    var head = el('span', 'toast-head');
    head.appendChild(el('span', 'sev sev-' + sev, sev));
    head.appendChild(el('span', 'toast-title', 'Anomaly on ' + a.source));
    body.appendChild(head);
    body.appendChild(el('span', 'toast-text', valuesText(a) + ' · score ' + fmtScore(a.score)));
    if (others && others.length) {
      var names = [];
      others.forEach(function (o) { if (names.indexOf(o.source) < 0) names.push(o.source); });
      body.appendChild(el('span', 'toast-more', '+' + others.length + ' more on ' + names.join(', ')));
    }
    body.addEventListener('click', function () {
      openDetail(state.anomalies.get(key) || a, null);
      dismiss();
    });
    var close = el('button', 'toast-close', null, { type: 'button', 'aria-label': 'Dismiss notification' });
    close.appendChild(el('span', null, '×', { 'aria-hidden': 'true' }));
    close.addEventListener('click', dismiss);
    toast.appendChild(body);
    toast.appendChild(close);

    var box = $('toasts');
    box.insertBefore(toast, box.firstChild);
    while (box.children.length > TOAST_LIMIT) box.lastChild.remove();

    var timer = null;
    var remaining = TOAST_MS;
    var startedAt = Date.now();
    function arm() { startedAt = Date.now(); timer = window.setTimeout(dismiss, remaining); }
    // Hovering or focusing a toast pauses its timer so it can be read and clicked.
    function pause() { window.clearTimeout(timer); remaining = Math.max(1500, remaining - (Date.now() - startedAt)); }
    toast.addEventListener('mouseenter', pause);
    toast.addEventListener('mouseleave', arm);
    toast.addEventListener('focusin', pause);
    toast.addEventListener('focusout', arm);
    function dismiss() {
      window.clearTimeout(timer);
      if (!toast.isConnected || toast.classList.contains('is-leaving')) return;
      toast.classList.add('is-leaving');
      window.setTimeout(function () { toast.remove(); }, prefersReducedMotion() ? 0 : 180);
    }
    arm();
  }

  function prefersReducedMotion() {
    return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  }

  // ---------------------------------------------------------------- detail dialog

  var detailOpener = null;

  function openDetailById(source, pointId, opener) {
    var found = state.anomalies.get('p' + pointId);
    if (!found) {
      var view = state.streams.get(source);
      found = view ? view.points.filter(function (p) { return p.id === pointId; })[0] : null;
    }
    if (found) openDetail(found, opener);
  }

  function openDetail(a, opener) {
    var dialog = $('detail');
    detailOpener = opener || document.activeElement;
    var sev = a.is_anomaly ? severityOf(a) : null;
    setText($('detail-title'), (a.is_anomaly ? 'Anomaly on ' : 'Point on ') + a.source);
    setText($('detail-subtitle'), fmtDateTime(a.timestamp) + (isNum(a.id) ? ' · point #' + a.id : '') +
      (isNum(a.anomaly_id) ? ' · anomaly #' + a.anomaly_id : ''));

    var body = $('detail-body');
    clear(body);

    var summary = el('dl', 'detail-summary');
    summary.appendChild(summaryItem('Score', fmtScore(a.score)));
    var sevItem = summaryItem('Severity', '');
    var sevValue = sevItem.querySelector('dd');
    sevValue.appendChild(sev ? el('span', 'sev sev-' + sev, sev) : el('span', 'muted', 'not an anomaly'));
    summary.appendChild(sevItem);
    summary.appendChild(summaryItem('Detectors fired', String((a.fired || []).length)));
    // Only built-in streams know what was injected; submitted points have no ground truth.
    var truthText = a.truth ? (a.truth.is_anomaly ? 'injected' + (a.truth.kind ? ' (' + a.truth.kind + ')' : '') : 'not injected') : 'n/a';
    summary.appendChild(summaryItem('Ground truth', truthText));
    body.appendChild(summary);

    if (a.warming_up) body.appendChild(el('p', 'detail-note', 'Detectors were still warming up on this stream.'));

    body.appendChild(el('h3', 'detail-section', 'Values'));
    var values = el('table', 'detail-table');
    values.appendChild(tableHead(['Field', 'Value', 'Expected range', '']));
    var vbody = el('tbody');
    Object.keys(a.values || {}).forEach(function (field) {
      var v = a.values[field];
      var range = a.expected ? a.expected[field] : null;
      var hasRange = Array.isArray(range) && isNum(range[0]) && isNum(range[1]);
      var outside = hasRange && isNum(v) && (v < range[0] || v > range[1]);
      var tr = el('tr');
      tr.appendChild(el('th', null, field, { scope: 'row' }));
      tr.appendChild(el('td', 'num', fmtValue(v) + (unitFor(streamInfo(a.source), field) ? ' ' + unitFor(streamInfo(a.source), field) : '')));
      tr.appendChild(el('td', 'num', hasRange ? fmtValue(range[0]) + ' – ' + fmtValue(range[1]) : 'not yet known'));
      tr.appendChild(el('td', outside ? 'flag flag-out' : 'flag', hasRange ? (outside ? (v < range[0] ? 'below' : 'above') : 'within') : ''));
      vbody.appendChild(tr);
    });
    values.appendChild(vbody);
    body.appendChild(values);

    body.appendChild(el('h3', 'detail-section', 'Detectors'));
    var det = el('table', 'detail-table');
    det.appendChild(tableHead(['Detector', 'Score', 'Threshold', 'Fired']));
    var dbody = el('tbody');
    var fired = a.fired || [];
    var thresholdCells = {};
    Object.keys(a.detectors || {}).forEach(function (name) {
      var score = a.detectors[name];
      var isFired = fired.indexOf(name) >= 0;
      var tr = el('tr', isFired ? 'is-fired' : '');
      tr.appendChild(el('th', null, name, { scope: 'row' }));
      var scoreCell = el('td', 'score-cell');
      var bar = el('span', 'score-bar', null, { 'aria-hidden': 'true' });
      var fill = el('span', 'score-fill');
      fill.style.width = (isNum(score) ? Math.max(0, Math.min(1, score)) * 100 : 0) + '%';
      bar.appendChild(fill);
      scoreCell.appendChild(bar);
      scoreCell.appendChild(el('span', 'num', fmtScore(score)));
      tr.appendChild(scoreCell);
      var th = el('td', 'num muted', '…');
      thresholdCells[name] = th;
      tr.appendChild(th);
      tr.appendChild(el('td', isFired ? 'flag flag-out' : 'flag', isFired ? 'yes' : 'no'));
      dbody.appendChild(tr);
    });
    det.appendChild(dbody);
    body.appendChild(det);

    body.appendChild(el('p', 'detail-explain', typeof a.explanation === 'string' && a.explanation ? a.explanation : explain(a)));

    fillThresholds(a.source, thresholdCells);
    if (!dialog.open) {
      if (typeof dialog.showModal === 'function') dialog.showModal();
      else dialog.setAttribute('open', '');
    }
  }

  function streamInfo(name) {
    var view = state.streams.get(name);
    return view ? view.info : null;
  }

  function summaryItem(label, value) {
    var wrap = el('div', 'summary-item');
    wrap.appendChild(el('dt', null, label));
    wrap.appendChild(el('dd', null, value));
    return wrap;
  }

  function tableHead(labels) {
    var thead = el('thead');
    var tr = el('tr');
    labels.forEach(function (label) { tr.appendChild(el('th', null, label, { scope: 'col' })); });
    thead.appendChild(tr);
    return thead;
  }

  function fillThresholds(source, cells) {
    loadConfig(source).then(function (cfg) {
      var detectors = (cfg && cfg.detectors) || {};
      Object.keys(cells).forEach(function (name) {
        var d = detectors[name];
        setText(cells[name], d && isNum(d.threshold) ? fmtScore(d.threshold) : '—');
      });
    }).catch(function () {
      Object.keys(cells).forEach(function (name) { setText(cells[name], '—'); });
    });
  }

  function initDialog() {
    var dialog = $('detail');
    dialog.addEventListener('close', function () {
      // Focus goes back where it was, so keyboard users keep their place.
      var target = detailOpener;
      detailOpener = null;
      if (target && target.isConnected && typeof target.focus === 'function') target.focus();
    });
    dialog.addEventListener('click', function (evt) {
      if (evt.target === dialog) dialog.close(); // a click on the backdrop
    });
  }

  // ---------------------------------------------------------------- tuning panel

  var tuning = { stream: null, rows: new Map(), ensembleLive: null };

  function loadConfig(source, force) {
    if (!force && state.configs.has(source)) return Promise.resolve(state.configs.get(source));
    return api('/api/configure?source=' + encodeURIComponent(source)).then(function (body) {
      var cfg = pickConfig(body, source);
      state.configs.set(source, cfg);
      return cfg;
    });
  }

  /** GET ?source= may answer {source, config} or {streams: {name: config}}; accept both. */
  function pickConfig(body, source) {
    if (!body) return null;
    if (body.config) return body.config;
    if (body.streams && body.streams[source]) return body.streams[source];
    if (body.detectors) return body;
    return null;
  }

  function onStreamAdded(view) {
    var option = el('option', null, view.name, { value: view.name });
    $('tune-stream').appendChild(option);
    $('stream-names').appendChild(el('option', null, null, { value: view.name }));
    var n = state.streams.size;
    setText($('stream-count'), n + (n === 1 ? ' stream' : ' streams'));
    if (!tuning.stream) selectTuningStream(view.name);
  }

  function selectTuningStream(name) {
    tuning.stream = name;
    var select = $('tune-stream');
    if (select.value !== name) select.value = name;
    var list = $('tune-detectors');
    clear(list);
    tuning.rows.clear();
    setTuneMessage('', false);
    var form = $('tune-ensemble');
    form.elements.threshold.value = '';
    loadConfig(name, true).then(function (cfg) {
      if (tuning.stream !== name || !cfg) return;
      renderTuning(cfg);
    }).catch(function (err) {
      if (tuning.stream === name) setTuneMessage(err.message, true);
    });
  }

  function renderTuning(cfg) {
    var form = $('tune-ensemble');
    setInput(form.elements.threshold, cfg.threshold);
    var list = $('tune-detectors');
    Object.keys(cfg.detectors || {}).forEach(function (name) {
      var row = tuning.rows.get(name);
      if (!row) {
        row = buildDetectorRow(name);
        tuning.rows.set(name, row);
        list.appendChild(row.form);
      }
      var d = cfg.detectors[name];
      setInput(row.inputs.threshold, d.threshold);
      setInput(row.inputs.window, d.window);
      // Some detectors (e.g. pattern) have no window: say so instead of offering an empty box.
      var hasWindow = d.window !== null && d.window !== undefined;
      row.inputs.window.disabled = !hasWindow;
      row.inputs.window.placeholder = hasWindow ? '' : 'n/a';
      setInput(row.inputs.weight, d.weight);
      row.inputs.enabled.checked = Boolean(d.enabled);
      row.form.classList.toggle('is-disabled', !d.enabled);
      row.threshold = d.threshold;
    });
    var view = state.streams.get(tuning.stream);
    if (view && view.latest) renderLiveScores(view.latest);
  }

  function setInput(input, value) {
    var text = value === null || value === undefined ? '' : String(value);
    if (input.value !== text) input.value = text;
    input.dataset.server = text;
  }

  function buildDetectorRow(name) {
    var form = el('form', 'detector-row', null, { novalidate: '' });
    form.dataset.detector = name;
    var head = el('div', 'detector-head');
    head.appendChild(el('span', 'detector-name', name));
    var liveScore = el('span', 'live-score', '—', { title: 'Latest score of ' + name });
    head.appendChild(liveScore);
    var toggle = el('label', 'toggle');
    var enabled = el('input', null, null, { type: 'checkbox', name: 'enabled' });
    toggle.appendChild(enabled);
    toggle.appendChild(el('span', null, 'on'));
    head.appendChild(toggle);
    form.appendChild(head);

    var fields = el('div', 'detector-fields');
    function numberField(label, fieldName, step) {
      var wrap = el('label', 'field field-compact');
      wrap.appendChild(el('span', 'field-label', label));
      var input = el('input', null, null, { type: 'number', name: fieldName, step: step, inputmode: 'decimal' });
      input.setAttribute('aria-label', name + ' ' + label.toLowerCase());
      wrap.appendChild(input);
      fields.appendChild(wrap);
      return input;
    }
    var inputs = {
      threshold: numberField('Threshold', 'threshold', 'any'),
      window: numberField('Window', 'window', '1'),
      weight: numberField('Weight', 'weight', 'any'),
      enabled: enabled
    };
    enabled.setAttribute('aria-label', name + ' enabled');
    var apply = el('button', 'btn btn-small', 'Apply', { type: 'submit' });
    apply.setAttribute('aria-label', 'Apply ' + name + ' settings');
    fields.appendChild(apply);
    form.appendChild(fields);
    form.appendChild(el('p', 'form-message', null, { role: 'status', 'aria-live': 'polite' }));

    var row = { name: name, form: form, inputs: inputs, liveScore: liveScore, threshold: null };
    form.addEventListener('submit', function (evt) {
      evt.preventDefault();
      var changes = {};
      ['threshold', 'window', 'weight'].forEach(function (key) {
        var input = inputs[key];
        if (input.value !== input.dataset.server) changes[key] = parseNumberInput(input.value);
      });
      if (!Object.keys(changes).length) {
        setTuneMessage('Nothing changed for ' + name + '.', false, form);
        return;
      }
      sendConfigure(name, changes, form);
    });
    enabled.addEventListener('change', function () {
      sendConfigure(name, { enabled: enabled.checked }, form);
    });
    return row;
  }

  /** Sends what the user typed even when it is not a number: the server owns validation. */
  function parseNumberInput(text) {
    var trimmed = text.trim();
    if (trimmed === '') return null;
    var n = Number(trimmed);
    return isFinite(n) ? n : trimmed;
  }

  function sendConfigure(detector, changes, form) {
    var stream = tuning.stream;
    var payload = Object.assign({ source: stream, detector: detector }, changes);
    form.classList.add('is-busy');
    api('/api/configure', { method: 'POST', body: payload }).then(function (body) {
      var cfg = pickConfig(body, stream);
      if (cfg) state.configs.set(stream, cfg);
      if (tuning.stream === stream && cfg) renderTuning(cfg);
      var what = Object.keys(changes).map(function (k) { return k + ' ' + String(changes[k]); }).join(', ');
      setTuneMessage('Saved ' + detector + ' on ' + stream + ': ' + what + '.', false, form);
      flash(form);
    }).catch(function (err) {
      setTuneMessage(err.message, true, form);
      // Put the controls back to what the server actually runs.
      if (tuning.stream === stream) {
        loadConfig(stream, true).then(renderTuning).catch(function () { /* keep the message */ });
      }
    }).then(function () {
      form.classList.remove('is-busy');
    });
  }

  function flash(node) {
    node.classList.remove('is-saved');
    void node.offsetWidth; // restart the CSS animation
    node.classList.add('is-saved');
  }

  /** Shows a message next to the form it is about (or under the panel), clearing older ones. */
  function setTuneMessage(text, isError, form) {
    var target = form ? form.querySelector('.form-message') : $('tune-message');
    Array.prototype.forEach.call($('tuning-panel').querySelectorAll('.form-message'), function (msg) {
      if (msg !== target && msg.textContent) { setText(msg, ''); msg.classList.remove('is-error'); }
    });
    setText(target, text);
    target.classList.toggle('is-error', Boolean(isError));
  }

  function renderLiveScores(point) {
    if (!point) return;
    var form = $('tune-ensemble');
    var live = form.querySelector('[data-role="live"]');
    setText(live, fmtScore(point.score));
    var cfg = state.configs.get(tuning.stream);
    live.classList.toggle('is-over', Boolean(cfg && isNum(point.score) && point.score >= cfg.threshold));
    tuning.rows.forEach(function (row, name) {
      var score = point.detectors ? point.detectors[name] : undefined;
      setText(row.liveScore, fmtScore(score));
      row.liveScore.classList.toggle('is-over', isNum(score) && isNum(row.threshold) && score >= row.threshold);
    });
  }

  function initTuning() {
    $('tune-stream').addEventListener('change', function (evt) { selectTuningStream(evt.target.value); });
    $('tune-ensemble').addEventListener('submit', function (evt) {
      evt.preventDefault();
      var input = evt.target.elements.threshold;
      if (!tuning.stream) return;
      sendConfigure('ensemble', { threshold: parseNumberInput(input.value) }, evt.target);
    });
  }

  // ---------------------------------------------------------------- submit form

  /** "42" -> {value: 42}; "a=1, b=2" -> {values: {a: 1, b: 2}}; a JSON object is accepted as values. */
  function parseValuesInput(text) {
    var trimmed = text.trim();
    if (!trimmed) throw new Error('Enter a value, or field=value pairs.');
    if (trimmed.charAt(0) === '{') {
      var obj;
      try { obj = JSON.parse(trimmed); } catch (err) { throw new Error('That JSON object does not parse.'); }
      return { values: obj };
    }
    if (!/[=:]/.test(trimmed)) {
      var n = Number(trimmed);
      if (!isFinite(n)) throw new Error('"' + trimmed + '" is not a number.');
      return { value: n };
    }
    var values = {};
    trimmed.split(/[,;\n]+/).forEach(function (pair) {
      if (!pair.trim()) return;
      var m = pair.match(/^\s*([^=:]+?)\s*[=:]\s*(.+?)\s*$/);
      if (!m) throw new Error('"' + pair.trim() + '" should look like field=value.');
      var v = Number(m[2]);
      values[m[1]] = isFinite(v) ? v : m[2];
    });
    return { values: values };
  }

  function initSubmitForm() {
    var form = $('submit-form');
    form.addEventListener('submit', function (evt) {
      evt.preventDefault();
      var msg = $('submit-message');
      msg.classList.remove('is-error');
      var payload;
      try {
        var source = form.elements.source.value.trim();
        if (!source) throw new Error('Choose a stream, or type a new name.');
        payload = Object.assign({ source: source }, parseValuesInput(form.elements.values.value));
        var ts = form.elements.timestamp.value;
        if (ts) {
          var ms = new Date(ts).getTime();
          if (!isFinite(ms)) throw new Error('That timestamp is not a date.');
          payload.timestamp = ms / 1000;
        }
      } catch (err) {
        showSubmitError(err.message);
        return;
      }
      var button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      setText(msg, 'Scoring…');
      api('/api/submit', { method: 'POST', body: payload }).then(function (body) {
        var result = body && Array.isArray(body.results) ? body.results[0] : null;
        if (!result) throw new ApiError('The server answered without a result.', 200);
        setText(msg, '');
        showVerdict(result);
        var view = state.streams.get(result.source);
        if (!view) {
          view = createStreamView(result.source, Object.keys(result.values || {}), { kind: 'user' });
          refreshStatusSoon();
        }
        addPoints(view, [result]);
        if (result.is_anomaly) rememberAnomaly(result);
      }).catch(function (err) {
        showSubmitError(err.message);
      }).then(function () {
        button.disabled = false;
      });
    });
  }

  function showSubmitError(text) {
    var msg = $('submit-message');
    setText(msg, text);
    msg.classList.add('is-error');
    $('submit-verdict').hidden = true;
  }

  function showVerdict(p) {
    var box = $('submit-verdict');
    clear(box);
    box.hidden = false;
    box.className = 'verdict ' + (p.is_anomaly ? 'is-anomaly' : 'is-normal');
    var head = el('div', 'verdict-head');
    head.appendChild(el('span', 'verdict-flag', p.is_anomaly ? 'Anomaly' : 'Normal'));
    if (p.is_anomaly) head.appendChild(el('span', 'sev sev-' + severityOf(p), severityOf(p)));
    head.appendChild(el('span', 'verdict-score', 'score ' + fmtScore(p.score)));
    box.appendChild(head);
    box.appendChild(el('p', 'verdict-meta', p.source + ' · ' + valuesText(p) + ' · ' + fmtDateTime(p.timestamp)));
    box.appendChild(el('p', 'verdict-explain', typeof p.explanation === 'string' ? p.explanation : explain(p)));
    var more = el('button', 'btn btn-small btn-ghost', 'Details', { type: 'button' });
    more.addEventListener('click', function () { openDetail(p, more); });
    box.appendChild(more);
  }

  // ---------------------------------------------------------------- header: clock, sound, history toggle

  function tickClock() {
    var now = new Date();
    setText($('clock-time'), fmtClock(now.getTime()));
    setText($('clock-date'), now.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' }));
    $('clock-time').setAttribute('datetime', now.toISOString());
  }

  function initSoundSwitch() {
    var button = $('sound-switch');
    function render(muted) {
      button.setAttribute('aria-checked', muted ? 'false' : 'true');
      button.title = muted ? 'Sound alerts are off' : 'Sound alerts are on';
    }
    if (!window.AlertSound) { button.hidden = true; return; }
    render(window.AlertSound.isMuted());
    window.AlertSound.onChange(render);
    button.addEventListener('click', function () {
      window.AlertSound.setMuted(!window.AlertSound.isMuted());
    });
  }

  var HISTORY_OPEN_KEY = 'anomalyWatch.historyOpen';

  function initHistoryToggle() {
    var button = $('history-toggle');
    var bodyEl = $('history-body');
    function render(open) {
      button.setAttribute('aria-expanded', open ? 'true' : 'false');
      bodyEl.hidden = !open;
    }
    var open = true;
    try { open = window.localStorage.getItem(HISTORY_OPEN_KEY) !== '0'; } catch (err) { open = true; }
    render(open);
    button.addEventListener('click', function () {
      var next = button.getAttribute('aria-expanded') !== 'true';
      render(next);
      try { window.localStorage.setItem(HISTORY_OPEN_KEY, next ? '1' : '0'); } catch (err) { /* not remembered */ }
    });
  }

  // ---------------------------------------------------------------- start

  function start() {
    if (typeof window.Chart !== 'function') {
      setText($('charts-empty'), 'Chart.js did not load (is /vendor/chart.umd.js served?).');
      return;
    }
    configureChartDefaults();
    tickClock();
    window.setInterval(tickClock, 1000);
    initSoundSwitch();
    initHistoryToggle();
    initDialog();
    initTuning();
    initSubmitForm();

    loadStatus().catch(function () {
      setText($('charts-empty'), 'The server cannot be reached. Retrying…');
      return [];
    }).then(function () {
      // Listen first, then fetch the windows: points in between arrive twice and are de-duplicated.
      connect();
      state.streams.forEach(loadStreamData);
      loadAlerts();
    });
    pollStats();
    window.setInterval(pollStats, STATS_EVERY_MS);
    window.setInterval(refreshStatusCounts, STATUS_EVERY_MS);
    window.setInterval(watchdog, 5000);
  }

  window.dashboard = {
    charts: state.charts,
    streams: state.streams,
    state: state,
    openDetail: openDetail,
    reconnect: function () { live.lostAt = live.lostAt || Date.now(); scheduleReconnect(); },
    get connection() { return state.connection; },
    get lastEventId() { return state.lastEventId; }
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
