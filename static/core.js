/* The dashboard's shared core: the page's namespace, DOM helpers, formatting, the API client
 * and a tiny event emitter. Every other script adds one widget to window.AnomalyWatch.
 *
 * Plain scripts, no build step: index.html loads this file first, then the widgets, then
 * dashboard.js, which starts them. Everything that comes from the server is inserted as text
 * (textContent / createElement), never as markup.
 */
(function () {
  'use strict';

  var AW = window.AnomalyWatch = window.AnomalyWatch || {};

  AW.SEVERITIES = ['low', 'medium', 'high', 'critical'];

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

  function prefersReducedMotion() {
    return window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  }

  /** Restarts a one-shot CSS animation (class is-saved) on a node. */
  function flash(node) {
    node.classList.remove('is-saved');
    void node.offsetWidth; // restart the CSS animation
    node.classList.add('is-saved');
  }

  /** A value remembered in localStorage; storage can be disabled (private mode), so reads fall back. */
  function stored(key, fallback) {
    try {
      var value = window.localStorage.getItem(key);
      return value === null ? fallback : value;
    } catch (err) {
      return fallback;
    }
  }

  function store(key, value) {
    try { window.localStorage.setItem(key, value); } catch (err) { /* not remembered */ }
  }

  AW.dom = { $: $, el: el, setText: setText, clear: clear, flash: flash,
    prefersReducedMotion: prefersReducedMotion, stored: stored, store: store };

  // ---------------------------------------------------------------- formatting

  function isNum(v) { return typeof v === 'number' && isFinite(v); }

  // toLocaleString builds a formatter on every call, which shows in profiles once a page
  // formats thousands of numbers; these are built once and reused.
  var NUMBER_FORMATS = [0, 1, 2].map(function (digits) {
    return new Intl.NumberFormat(undefined, { maximumFractionDigits: digits });
  });
  var DATE_FORMAT = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
  // Dates outside the viewer's current year carry their year: "Jan 1" of 2025 and of 2030 differ.
  var YEAR_DATE_FORMAT = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });

  function dateOf(d) {
    return (d.getFullYear() === new Date().getFullYear() ? DATE_FORMAT : YEAR_DATE_FORMAT).format(d);
  }

  function value(v) {
    if (!isNum(v)) return '—';
    var abs = Math.abs(v);
    if (abs >= 10000) return NUMBER_FORMATS[0].format(v);
    if (abs >= 100) return NUMBER_FORMATS[1].format(v);
    if (abs >= 1) return NUMBER_FORMATS[2].format(v);
    if (abs === 0) return '0';
    return v.toPrecision(3);
  }

  function score(v) { return isNum(v) ? v.toFixed(3) : '—'; }
  function count(v) { return isNum(v) ? (Number.isInteger(v) ? NUMBER_FORMATS[0] : NUMBER_FORMATS[2]).format(v) : '—'; }
  function percent(v, digits) {
    return isNum(v) ? (v * 100).toFixed(digits === undefined ? 1 : digits) + '%' : '—';
  }

  function pad2(n) { return n < 10 ? '0' + n : String(n); }

  function clock(ms) {
    var d = new Date(ms);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function dateTime(seconds) {
    if (!isNum(seconds)) return '—';
    var d = new Date(seconds * 1000);
    return dateOf(d) + ' ' + clock(d.getTime());
  }

  function duration(seconds) {
    if (!isNum(seconds)) return '—';
    // Below a second a span keeps two decimals ("0.99s"), never "0s" for a span that is not nothing.
    if (seconds > 0 && seconds < 1) return seconds < 0.01 ? '<0.01s' : (Math.floor(seconds * 100) / 100) + 's';
    var s = Math.floor(seconds);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  AW.fmt = { isNum: isNum, value: value, score: score, count: count, percent: percent, clock: clock,
    dateTime: dateTime, duration: duration };

  // ---------------------------------------------------------------- time axes
  // Charts plot time as epoch milliseconds on a linear axis, whose own "nice" steps are decimal
  // (1,000,000 ms put ticks at 10:16:40, 10:33:20): these put them on round times of the
  // viewer's clock (every 30 s, 10 min, 6 h, at midnight) and label them as precisely as the step needs.

  var TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800];

  /** A tick's day, with its year when the axis reaches outside the viewer's current year. */
  function dayOf(axis, d) {
    var year = new Date().getFullYear();
    var other = new Date(axis.min).getFullYear() !== year || new Date(axis.max).getFullYear() !== year;
    return (other ? YEAR_DATE_FORMAT : DATE_FORMAT).format(d);
  }

  /** An ``afterBuildTicks`` hook: at most ``most`` ticks on round local times inside the axis' range. */
  function timeTicks(most) {
    return function (axis) {
      var span = axis.max - axis.min;
      if (!(span > 0) || !isFinite(span)) return;
      var step = TIME_STEPS_S[TIME_STEPS_S.length - 1] * 1000;
      for (var i = 0; i < TIME_STEPS_S.length; i++) {
        if (span / (TIME_STEPS_S[i] * 1000) <= most - 1) { step = TIME_STEPS_S[i] * 1000; break; }
      }
      // Round in local time: getTimezoneOffset is UTC minus local, in minutes.
      var shift = -new Date(axis.min).getTimezoneOffset() * 60000;
      var values = [];
      for (var t = Math.ceil((axis.min + shift) / step) * step - shift; t <= axis.max; t += step) {
        values.push({ value: t });
      }
      if (values.length < 2) return;  // a range too short for two round times: keep the scale's own
      axis.ticks = values;
      axis.$timeStep = step;
    };
  }

  /** A tick ``callback`` for an axis built by :func:`timeTicks` (``this`` is the axis). */
  function timeLabel(ms) {
    var step = this.$timeStep;
    var d = new Date(ms);
    var hm = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    if (!step || step < 60000) return clock(ms);
    if (step >= 86400000) return dayOf(this, d);
    if (this.max - this.min > 86400000 || (d.getHours() === 0 && d.getMinutes() === 0)) return dayOf(this, d) + ' ' + hm;
    return hm;
  }

  AW.timeAxis = { ticks: timeTicks, label: timeLabel };

  // ---------------------------------------------------------------- value axes
  // A live chart's value axis is fitted to its points (charts.js, fitAxes), and Chart.js then
  // labels the fitted ends as well as its round steps: 100.1 drawn over 100, 27.75 beside 20.
  // This keeps only round values (1, 2, 2.5 or 5 times a power of ten) inside the range.

  var VALUE_STEPS = [1, 2, 2.5, 5];

  /** An ``afterBuildTicks`` hook: at most ``most`` ticks on round values inside the axis' range. */
  function valueTicks(most) {
    return function (axis) {
      var span = axis.max - axis.min;
      if (!(span > 0) || !isFinite(span)) return;
      // The finest round step that gives at most ``most`` ticks, from a tenth of the even split up.
      var power = Math.pow(10, Math.floor(Math.log10(span / most)) - 1);
      var first = 0;
      var last = -1;
      var step = 0;
      for (var n = 0; n < 40 && !(step && last - first + 1 <= most); n++) {
        step = VALUE_STEPS[n % 4] * power * Math.pow(10, Math.floor(n / 4));
        first = Math.ceil(axis.min / step);
        last = Math.floor(axis.max / step);
      }
      if (last - first < 1) return;  // too narrow for two round values: keep the scale's own
      var values = [];
      for (var k = first; k <= last; k++) {
        // k * step, not a running sum, so 0.1 + 0.2 rounding never shows in a label.
        values.push({ value: Number((k * step).toPrecision(12)) });
      }
      axis.ticks = values;
    };
  }

  AW.valueAxis = { ticks: valueTicks };

  // ---------------------------------------------------------------- points

  function severityOf(point) {
    return AW.SEVERITIES.indexOf(point.severity) >= 0 ? point.severity : 'low';
  }

  /**
   * Whether a point opens an anomalous episode (the one alert of an incident). Servers that
   * send `alert` mark only an episode's first point; older ones send is_anomaly alone, and then
   * every anomalous point is its own alert.
   */
  function isAlert(point) {
    if (!point || !point.is_anomaly) return false;
    return typeof point.alert === 'boolean' ? point.alert : true;
  }

  function unitFor(info, field) {
    if (!info || !info.units) return '';
    if (typeof info.units === 'string') return info.units;
    return typeof info.units[field] === 'string' ? info.units[field] : '';
  }

  function valuesText(point) {
    var values = point.values || {};
    var keys = Object.keys(values);
    if (keys.length === 1) return value(values[keys[0]]);
    return keys.map(function (k) { return k + ' ' + value(values[k]); }).join(' · ');
  }

  /** A one-paragraph, human explanation of a verdict, built from the detector scores. */
  function explain(point) {
    if (typeof point.explanation === 'string' && point.explanation) return point.explanation;
    var parts = [];
    var fired = Array.isArray(point.fired) ? point.fired : [];
    if (point.warming_up) parts.push('Detectors are still warming up on this stream, so the score is provisional.');
    if (fired.length) {
      parts.push((fired.length === 1 ? 'Detector ' : 'Detectors ') + fired.join(', ') + ' fired.');
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
      parts.push(field + ' = ' + value(v) + ' is ' + where + ' the expected range ' +
        AW.fmt.value(range[0]) + ' – ' + AW.fmt.value(range[1]) + '.');
    });
    return parts.join(' ');
  }

  AW.points = { severityOf: severityOf, isAlert: isAlert, unitFor: unitFor, valuesText: valuesText,
    explain: explain };

  // ---------------------------------------------------------------- API client

  function ApiError(message, status) {
    this.name = 'ApiError';
    this.message = message;
    this.status = status;
  }
  ApiError.prototype = Object.create(Error.prototype);

  /** Extra request headers every call carries (e.g. an access token); widgets may add to it. */
  var defaultHeaders = {};

  function decode(res, text) {
    var body = null;
    try { body = text ? JSON.parse(text) : null; } catch (err) { body = null; }
    if (!res.ok) {
      // The login widget (when the page has one) asks for the server's token.
      if (res.status === 401 && window.dashboardLogin) window.dashboardLogin.require();
      var message = body && typeof body.error === 'string' ? body.error : 'HTTP ' + res.status;
      throw new ApiError(message, res.status);
    }
    return body;
  }

  /** fetch() a JSON endpoint; rejects with ApiError carrying the server's {"error": ...} message. */
  function api(path, options) {
    var opts = options || {};
    var headers = Object.assign({ Accept: 'application/json' }, defaultHeaders);
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, {
      method: opts.method || 'GET',
      headers: headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: 'no-store'
    }).then(function (res) {
      return res.text().then(function (text) { return decode(res, text); });
    }, function () {
      throw new ApiError('The server cannot be reached.', 0);
    });
  }

  /**
   * Sends a file (FormData or Blob) with upload progress. fetch() cannot report upload
   * progress, so this one call uses XMLHttpRequest. onProgress gets a fraction 0..1.
   */
  function upload(path, body, onProgress, contentType) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', path);
      xhr.setRequestHeader('Accept', 'application/json');
      Object.keys(defaultHeaders).forEach(function (k) { xhr.setRequestHeader(k, defaultHeaders[k]); });
      if (contentType) xhr.setRequestHeader('Content-Type', contentType);
      xhr.upload.addEventListener('progress', function (evt) {
        if (evt.lengthComputable && onProgress) onProgress(evt.loaded / evt.total);
      });
      xhr.addEventListener('load', function () {
        try {
          resolve(decode({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status }, xhr.responseText));
        } catch (err) {
          reject(err);
        }
      });
      xhr.addEventListener('error', function () { reject(new ApiError('The server cannot be reached.', 0)); });
      xhr.addEventListener('abort', function () { reject(new ApiError('The upload was cancelled.', 0)); });
      xhr.send(body);
    });
  }

  AW.ApiError = ApiError;
  AW.api = api;
  AW.api.upload = upload;
  AW.api.headers = defaultHeaders;

  // ---------------------------------------------------------------- events between widgets

  /** A minimal emitter: on(type, fn) returns a function that unsubscribes. */
  function emitter() {
    var handlers = Object.create(null);
    return {
      on: function (type, fn) {
        (handlers[type] = handlers[type] || []).push(fn);
        return function () {
          handlers[type] = (handlers[type] || []).filter(function (h) { return h !== fn; });
        };
      },
      emit: function (type) {
        var args = Array.prototype.slice.call(arguments, 1);
        (handlers[type] || []).slice().forEach(function (fn) { fn.apply(null, args); });
      }
    };
  }

  AW.emitter = emitter;
})();
