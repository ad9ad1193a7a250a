/* Chart cards: one Chart.js line chart per stream on screen, with its expected band and a red
 * marker on every anomalous point (a larger one where an episode's alert was raised).
 *
 * The stream browser decides which streams are on screen (show/hide); this file owns their
 * cards. Redraws are batched per animation frame, and a chart redraws only when its stream's
 * window changed. Chart.js's performance advice: animation off, parsing off with pre-shaped
 * {x, y} data, update('none').
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var setText = dom.setText;
  var isNum = fmt.isNum;
  var unitFor = AW.points.unitFor;

  var FIELD_COLORS = ['#4cc9f0', '#f7b267', '#b388ff', '#7ee0a1', '#ff8fab', '#ffd166'];
  var MARKER_COLOR = '#ff4d5e';
  var GRID_COLOR = 'rgba(148, 163, 204, 0.10)';
  var TICK_COLOR = '#8b97b3';

  var views = new Map();             // name -> card view
  var charts = Object.create(null);  // name -> Chart (exposed for tests and the console)
  var dirty = new Set();
  var frameRequested = false;

  function configureDefaults() {
    Chart.defaults.color = TICK_COLOR;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 11;
  }

  function fieldColor(i) { return FIELD_COLORS[i % FIELD_COLORS.length]; }

  // Episode points after the first are marked too, slightly smaller than the point that alerted.
  function markerRadius(ctx) { return ctx.raw && ctx.raw.alert === false ? 3.2 : 4.5; }

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
        pointRadius: markerRadius, pointHoverRadius: 7, pointHitRadius: 9, pointBackgroundColor: MARKER_COLOR,
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
        grid: { color: GRID_COLOR },
        border: { display: false },
        afterBuildTicks: AW.timeAxis.ticks(5),
        ticks: { maxTicksLimit: 5, maxRotation: 0, autoSkip: true, callback: AW.timeAxis.label }
      }
    };
    view.fields.forEach(function (field, i) {
      // Each field gets its own scale so a 0.2 vibration is not flattened by a 70 °C temperature;
      // only the first two scales show ticks to keep the card readable.
      scales['y' + i] = {
        type: 'linear',
        position: i === 1 ? 'right' : 'left',
        display: i < 2,
        grid: { color: GRID_COLOR, drawOnChartArea: i === 0 },
        border: { display: false },
        afterBuildTicks: AW.valueAxis.ticks(4),
        ticks: { maxTicksLimit: 4, color: view.fields.length > 1 ? fieldColor(i) : TICK_COLOR,
          callback: function (v) { return fmt.value(v); } }
      };
    });
    return scales;
  }

  function markerAt(chart, evt) {
    var hits = chart.getElementsAtEventForMode(evt, 'nearest', { intersect: true }, false);
    for (var i = 0; i < hits.length; i += 1) {
      var ds = chart.data.datasets[hits[i].datasetIndex];
      if (ds.role === 'marker') return ds.data[hits[i].index];
    }
    return null;
  }

  function createChart(view) {
    view.chart = new Chart(view.dom.canvas, {
      type: 'line',
      data: { datasets: buildSeries(view) },
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
              title: function (items) { return items.length ? fmt.clock(items[0].parsed.x) : ''; },
              label: function (item) {
                var unit = unitFor(view.stream.info, item.dataset.label);
                return ' ' + item.dataset.label + ': ' + fmt.value(item.parsed.y) + (unit ? ' ' + unit : '');
              }
            }
          }
        },
        onHover: function (evt, _active, c) {
          c.canvas.style.cursor = markerAt(c, evt) ? 'pointer' : 'default';
        },
        onClick: function (evt, _active, c) {
          var hit = markerAt(c, evt);
          if (hit) AW.detail.openById(view.name, hit.id, c.canvas);
        }
      }
    });
    charts[view.name] = view.chart;
  }

  /** The stream's stored points around the window on the card, in the history view. */
  function historyButton(view) {
    var button = el('button', 'btn btn-ghost chart-history', 'History', { type: 'button', 'data-action': 'history',
      'aria-label': 'History of ' + view.name,
      title: 'The stored points of ' + view.name + ' around this window, over any range' });
    button.addEventListener('click', function () {
      var points = view.stream.points;
      var now = Date.now() / 1000;
      var start = points.length ? points[0].timestamp : now;
      var end = points.length ? points[points.length - 1].timestamp : now;
      AW.history.chart.openAround(view.name, start, end);
    });
    return button;
  }

  function buildCard(view) {
    var info = view.stream.info;
    var card = el('article', 'chart-card');
    card.dataset.stream = view.name;
    var head = el('header', 'chart-head');
    var titleWrap = el('div', 'chart-title-wrap');
    var title = el('h3', 'chart-title', view.name);
    var kind = el('span', 'badge badge-user', 'user');
    kind.hidden = info.kind !== 'user';
    titleWrap.appendChild(title);
    titleWrap.appendChild(kind);
    var status = el('span', 'chart-status', 'waiting');
    var side = el('div', 'chart-head-side');
    side.appendChild(status);
    side.appendChild(historyButton(view));
    head.appendChild(titleWrap);
    head.appendChild(side);

    var desc = el('p', 'chart-desc', info.description || '');

    var legend = el('ul', 'chart-legend');
    var legendValues = view.fields.map(function (field, i) {
      var item = el('li', 'legend-item');
      var swatch = el('span', 'legend-swatch', null, { 'aria-hidden': 'true' });
      swatch.style.background = fieldColor(i);
      item.appendChild(swatch);
      item.appendChild(el('span', 'legend-field', field));
      var value = el('span', 'legend-value', '—');
      item.appendChild(value);
      var unit = el('span', 'legend-unit', unitFor(info, field));
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
  }

  function renderInfo(view) {
    var info = view.stream.info;
    view.dom.kind.hidden = info.kind !== 'user';
    setText(view.dom.desc, info.description || '');
    view.fields.forEach(function (field, i) {
      setText(view.dom.legendValues[i].unit, unitFor(info, field));
    });
    if (isNum(info.points)) {
      setText(view.dom.counts, fmt.count(info.points) + ' points · ' + fmt.count(info.anomalies) + ' anomalies');
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

  /** Refills the datasets from the stream's window; arrays are emptied in place (Chart.js keeps them). */
  function fillSeries(view) {
    view.series.forEach(function (s) {
      s.line.data.length = 0;
      s.markers.data.length = 0;
      if (s.lo) { s.lo.data.length = 0; s.hi.data.length = 0; }
    });
    view.stream.points.forEach(function (point) {
      var x = point.timestamp * 1000;
      view.series.forEach(function (s) {
        var y = pointY(point, s.field);
        s.line.data.push({ x: x, y: y });
        if (s.lo) {
          s.lo.data.push({ x: x, y: pointExpected(point, s.field, 0) });
          s.hi.data.push({ x: x, y: pointExpected(point, s.field, 1) });
        }
        if (point.is_anomaly && y !== null) {
          s.markers.data.push({ x: x, y: y, id: point.id, severity: point.severity,
            alert: typeof point.alert === 'boolean' ? point.alert : undefined });
        }
      });
    });
  }

  function fitAxes(view) {
    var points = view.stream.points;
    var scales = view.chart.options.scales;
    if (!points.length) return;
    scales.x.min = points[0].timestamp * 1000;
    scales.x.max = Math.max(points[points.length - 1].timestamp * 1000, scales.x.min + 1000);
    if (view.fields.length !== 1) return;
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

  function render(view) {
    if (!view.chart) {
      // Charts are made once their card is in the page, so Chart.js measures a real box.
      if (!view.dom.card.isConnected) return;
      createChart(view);
    }
    if (view.drawn !== view.stream.version) {
      view.drawn = view.stream.version;
      fillSeries(view);
      fitAxes(view);
      view.chart.update('none');
    }
    var latest = view.stream.latest;
    if (!latest) return;
    view.fields.forEach(function (field, i) {
      setText(view.dom.legendValues[i].value, fmt.value(pointY(latest, field)));
    });
    setText(view.dom.score, 'score ' + fmt.score(latest.score));
    var status = latest.warming_up ? 'warming up' : (latest.is_anomaly ? 'anomaly' : 'normal');
    setText(view.dom.status, status);
    var cls = 'chart-status status-' + status.replace(' ', '-');
    if (view.dom.status.className !== cls) view.dom.status.className = cls;
    view.dom.card.classList.toggle('is-alert', Boolean(latest.is_anomaly));
  }

  /** Updates are batched per animation frame: many events in one frame draw once. */
  function markDirty(view) {
    dirty.add(view);
    if (frameRequested) return;
    frameRequested = true;
    window.requestAnimationFrame(flush);
  }

  function flush() {
    frameRequested = false;
    dirty.forEach(function (view) { if (views.get(view.name) === view) render(view); });
    dirty.clear();
  }

  /** The card of a stream, created (with its chart) on first call; the caller places it. */
  function cardFor(stream) {
    var view = views.get(stream.name);
    if (view) return view.dom.card;
    view = { name: stream.name, stream: stream, fields: stream.fields.slice(), series: [], chart: null,
      dom: {}, drawn: -1 };
    buildCard(view);
    renderInfo(view);
    views.set(stream.name, view);
    AW.streams.watch(stream);
    markDirty(view);
    return view.dom.card;
  }

  /** Removes a stream's card and frees its chart. */
  function remove(name) {
    var view = views.get(name);
    if (!view) return;
    views.delete(name);
    delete charts[name];
    if (view.chart) view.chart.destroy();
    view.dom.card.remove();
    AW.streams.unwatch(view.stream);
  }

  function start() {
    configureDefaults();
    AW.streams.on('changed', function (stream) {
      var view = views.get(stream.name);
      if (view) markDirty(view);
    });
    AW.streams.on('info', function (stream) {
      var view = views.get(stream.name);
      if (view) renderInfo(view);
    });
  }

  AW.charts = {
    byName: charts,
    shown: function () { return Array.from(views.keys()); },
    has: function (name) { return views.has(name); },
    cardFor: cardFor,
    remove: remove,
    start: start
  };
})(window.AnomalyWatch);
