/* The history view's chart: one stream's stored points over the picked range
 * (GET /api/history/<stream>), as a line when the server sends the points themselves, or as a
 * min-max band with the mean when it sends buckets; the range's anomalies as red markers.
 * Dragging across the chart zooms to that span (history-range.js keeps the range).
 *
 * Answers can overtake each other when the range changes quickly: only the latest request's
 * answer is drawn. A preset range (ending now) is fetched again every REFRESH_MS while shown.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var $ = dom.$;

  var LINE_COLOR = '#4cc9f0';
  var BAND_COLOR = 'rgba(76, 201, 240, 0.22)';
  var MARKER_COLOR = '#ff4d5e';
  var GRID_COLOR = 'rgba(148, 163, 204, 0.10)';
  var REFRESH_MS = 10000;
  var MIN_DRAG_PX = 6;

  var chart = null;
  var visible = false;
  var request = 0;     // sequence number of the latest fetch
  var last = null;     // the latest answer drawn
  var refreshTimer = null;

  function selected() { return AW.history.picker.selected; }

  function fillFields(fields) {
    var select = $('hist-field');
    var keep = select.value;
    if (Array.prototype.map.call(select.options, function (o) { return o.value; }).join('\n') !== fields.join('\n')) {
      dom.clear(select);
      fields.forEach(function (f) { select.appendChild(dom.el('option', null, f, { value: f })); });
    }
    select.value = fields.indexOf(keep) >= 0 ? keep : fields[0];
    $('hist-field-wrap').hidden = fields.length < 2;
  }

  function createChart() {
    chart = new Chart($('hist-canvas'), {
      type: 'line',
      data: { datasets: [
        { label: 'min', role: 'low', data: [], borderWidth: 0, pointRadius: 0, pointHitRadius: 0, fill: false, order: 3 },
        { label: 'max', role: 'high', data: [], borderWidth: 0, pointRadius: 0, pointHitRadius: 0, fill: '-1',
          backgroundColor: BAND_COLOR, order: 3 },
        { label: 'value', role: 'line', data: [], borderColor: LINE_COLOR, backgroundColor: LINE_COLOR,
          borderWidth: 1.5, pointRadius: 0, pointHoverRadius: 3, spanGaps: false, order: 2 },
        { label: 'anomalies', role: 'marker', data: [], showLine: false, pointRadius: 4.5, pointHoverRadius: 7,
          pointBackgroundColor: MARKER_COLOR, pointBorderColor: '#1b0b10', borderColor: MARKER_COLOR,
          backgroundColor: MARKER_COLOR, order: 1 }
      ] },
      options: {
        animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        scales: {
          x: { type: 'linear', grid: { color: GRID_COLOR }, border: { display: false },
            afterBuildTicks: AW.timeAxis.ticks(7),
            ticks: { maxTicksLimit: 7, maxRotation: 0, callback: AW.timeAxis.label } },
          y: { type: 'linear', grid: { color: GRID_COLOR }, border: { display: false },
            ticks: { maxTicksLimit: 6, callback: function (v) { return fmt.value(v); } } }
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.dataset.role === 'line' || item.dataset.role === 'marker'; },
            callbacks: {
              title: function (items) { return items.length ? fmt.dateTime(items[0].parsed.x / 1000) : ''; },
              label: function (item) {
                var raw = item.raw;
                if (item.dataset.role === 'marker') return ' anomaly ' + fmt.value(raw.y) + ' (' + (raw.severity || '—') + ')';
                if (raw.min !== undefined) {
                  return ' mean ' + fmt.value(raw.y) + ' · min ' + fmt.value(raw.min) + ' · max ' + fmt.value(raw.max) +
                    ' · ' + fmt.count(raw.count) + ' points';
                }
                return ' ' + fmt.value(raw.y);
              }
            }
          }
        }
      }
    });
  }

  function numberOr(value) { return fmt.isNum(value) ? value : null; }

  function draw(answer) {
    if (!chart) createChart();
    var field = $('hist-field').value;
    var sets = chart.data.datasets;
    var low = [];
    var high = [];
    var line = [];
    if (answer.resolution === 'buckets') {
      answer.buckets.forEach(function (b) {
        var x = (b.first + b.last) / 2 * 1000;
        var mean = numberOr(b.mean[field]);
        low.push({ x: x, y: numberOr(b.min[field]) });
        high.push({ x: x, y: numberOr(b.max[field]) });
        line.push({ x: x, y: mean, min: b.min[field], max: b.max[field], count: b.count });
      });
    } else {
      answer.points.forEach(function (p) { line.push({ x: p.timestamp * 1000, y: numberOr(p.values[field]) }); });
    }
    sets[0].data = low;
    sets[1].data = high;
    sets[2].data = line;
    sets[3].data = answer.anomalies.filter(function (a) { return fmt.isNum(a.values[field]); }).map(function (a) {
      return { x: a.timestamp * 1000, y: a.values[field], id: a.id, severity: a.severity };
    });
    chart.options.scales.x.min = answer.from * 1000;
    chart.options.scales.x.max = answer.to * 1000;
    chart.update('none');
  }

  function summarize(answer) {
    var parts = [fmt.count(answer.total) + ' points from ' + fmt.dateTime(answer.from) + ' to ' + fmt.dateTime(answer.to)];
    parts.push(answer.resolution === 'buckets'
      ? 'downsampled by the server to spans of ' + fmt.duration(answer.bucket_seconds) + ' (min, max, mean)'
      : 'every point');
    parts.push(fmt.count(answer.anomalies.length) + (answer.anomalies_truncated ? '+' : '') +
      ' anomal' + (answer.anomalies.length === 1 ? 'y' : 'ies'));
    return parts.join(' · ');
  }

  function load() {
    if (!visible) return;
    var stream = selected();
    if (!stream) return;
    var range = AW.history.range.current;
    var width = $('hist-chart').clientWidth || 800;
    var most = Math.max(10, Math.min(2000, Math.round(width / 2)));
    var mine = ++request;
    var url = '/api/history/' + encodeURIComponent(stream) + '?from=' + range.from.toFixed(3) +
      '&to=' + range.to.toFixed(3) + '&max_points=' + most;
    $('hist-view').setAttribute('aria-busy', 'true');
    AW.api(url).then(function (answer) {
      if (mine !== request) return;
      last = answer;
      fillFields(answer.fields);
      draw(answer);
      dom.setText($('hist-summary'), summarize(answer));
    }, function (err) {
      if (mine !== request) return;
      dom.setText($('hist-summary'), err.message);
    }).then(function () {
      if (mine === request) $('hist-view').removeAttribute('aria-busy');
    });
  }

  // -------------------------------------------------------------- drag to zoom

  function enableDragZoom() {
    var box = $('hist-chart');
    var band = $('hist-selection');
    var startX = null;

    function area() { return chart ? chart.chartArea : null; }
    function clampX(x) {
      var a = area();
      return a ? Math.min(Math.max(x, a.left), a.right) : x;
    }
    function localX(evt) { return evt.clientX - box.getBoundingClientRect().left; }

    box.addEventListener('pointerdown', function (evt) {
      if (!chart || evt.button !== 0) return;
      startX = clampX(localX(evt));
      box.setPointerCapture(evt.pointerId);
      band.style.left = startX + 'px';
      band.style.width = '0px';
      band.hidden = false;
    });
    box.addEventListener('pointermove', function (evt) {
      if (startX === null) return;
      var x = clampX(localX(evt));
      band.style.left = Math.min(x, startX) + 'px';
      band.style.width = Math.abs(x - startX) + 'px';
    });
    function finish(evt) {
      if (startX === null) return;
      var x = clampX(localX(evt));
      var from = Math.min(x, startX);
      var to = Math.max(x, startX);
      startX = null;
      band.hidden = true;
      if (evt.type === 'pointerup' && to - from >= MIN_DRAG_PX) {
        var scale = chart.scales.x;
        AW.history.range.zoomTo(scale.getValueForPixel(from) / 1000, scale.getValueForPixel(to) / 1000);
      }
    }
    box.addEventListener('pointerup', finish);
    box.addEventListener('pointercancel', finish);
  }

  function start() {
    AW.history.range.start();
    AW.history.range.on('change', load);
    AW.history.picker.start();
    AW.history.picker.on('change', load);
    $('hist-field').addEventListener('change', function () { if (last) draw(last); });
    AW.streams.on('added', function () {
      // The view was shown before the stream list arrived.
      if (visible && !selected() && AW.history.picker.selectDefault()) load();
    });
    AW.views.on('shown', function (name) {
      visible = name === 'history';
      window.clearInterval(refreshTimer);
      if (!visible) return;
      if (!selected()) AW.history.picker.selectDefault();
      if (AW.history.range.current.preset) AW.history.range.refresh(); // loads
      else load();
      refreshTimer = window.setInterval(function () {
        if (AW.history.range.current.preset) AW.history.range.refresh();
      }, REFRESH_MS);
    });
    enableDragZoom();
  }

  /** Show ``stream`` over [from, to] (epoch seconds) in the history view (e.g. from an alert);
   * false when the page does not know the stream. The range's change loads it once shown. */
  function open(stream, from, to) {
    if (!AW.history.picker.select(stream)) return false;
    AW.history.range.zoomTo(from, to);
    if (!visible) window.location.hash = '#history';
    return true;
  }

  /** Show ``stream`` around [start, end] (epoch seconds): a quarter of the span, at least five
   * minutes, either side, so what came before and after is in view (a chart card, a point). */
  function openAround(stream, start, end) {
    var margin = Math.max(300, (end - start) * 0.25);
    return open(stream, start - margin, end + margin);
  }

  AW.history = AW.history || {};
  AW.history.chart = {
    start: start,
    load: load,
    open: open,
    openAround: openAround,
    get chart() { return chart; },
    get answer() { return last; }
  };
})(window.AnomalyWatch);
