/* The history view's time range: presets (15 min to 7 d, ending now), a custom from/to, zoom in
 * and out around the middle, a zoom to any span (the chart's drag), and Back to the range before.
 *
 *   AnomalyWatch.history.range.on('change', fn)   fn(range)   {from, to} epoch seconds, preset or null
 *   AnomalyWatch.history.range.current                       the range now shown
 *
 * A preset range follows the clock: refresh() moves it to end now again.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var $ = dom.$;

  var MIN_SPAN_S = 10;             // zooming stops at ten seconds
  var MAX_SPAN_S = 400 * 86400;    // the API's longest range
  var BACK_STEPS = 20;

  var bus = AW.emitter();
  var current = null;
  var previous = [];

  function nowS() { return Date.now() / 1000; }

  /** A datetime-local input's value for epoch seconds (local time, to the second). */
  function toInput(seconds) {
    var d = new Date(seconds * 1000);
    var pad = function (n) { return n < 10 ? '0' + n : String(n); };
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fromInput(value) {
    var ms = new Date(value).getTime();
    return isFinite(ms) ? ms / 1000 : null;
  }

  function render() {
    Array.prototype.forEach.call($('hist-presets').querySelectorAll('button'), function (button) {
      button.setAttribute('aria-pressed', String(Number(button.dataset.seconds) === current.preset));
    });
    $('hist-from').value = toInput(current.from);
    $('hist-to').value = toInput(current.to);
    $('hist-back').disabled = previous.length === 0;
  }

  function set(range, remember) {
    if (remember !== false && current) {
      previous.push(current);
      if (previous.length > BACK_STEPS) previous.shift();
    }
    current = range;
    render();
    bus.emit('change', current);
  }

  function preset(seconds, remember) {
    var to = nowS();
    set({ from: to - seconds, to: to, preset: seconds }, remember);
  }

  /** Show [from, to) (epoch seconds), kept within the API's limits. */
  function zoomTo(from, to) {
    var span = Math.min(Math.max(to - from, MIN_SPAN_S), MAX_SPAN_S);
    var middle = (from + to) / 2;
    set({ from: middle - span / 2, to: middle + span / 2, preset: null });
  }

  function zoom(factor) {
    var middle = (current.from + current.to) / 2;
    var half = (current.to - current.from) * factor / 2;
    var from = middle - half, to = middle + half;
    // Zooming out of a range that ended by now widens it into the past, not into the future.
    var end = Math.max(nowS(), current.to);
    if (to > end) { from -= to - end; to = end; }
    zoomTo(from, to);
  }

  function showMessage(text) {
    var box = $('hist-message');
    dom.setText(box, text || '');
    box.classList.toggle('is-error', Boolean(text));
  }

  function onCustom(evt) {
    evt.preventDefault();
    var from = fromInput($('hist-from').value);
    var to = fromInput($('hist-to').value);
    if (from === null || to === null) { showMessage('Give both a start and an end.'); return; }
    if (to <= from) { showMessage('The end must come after the start.'); return; }
    if (to - from > MAX_SPAN_S) { showMessage('At most 400 days at a time.'); return; }
    showMessage('');
    set({ from: from, to: to, preset: null });
  }

  function start() {
    Array.prototype.forEach.call($('hist-presets').querySelectorAll('button'), function (button) {
      button.addEventListener('click', function () { showMessage(''); preset(Number(button.dataset.seconds)); });
    });
    $('hist-custom').addEventListener('submit', onCustom);
    $('hist-zoom-in').addEventListener('click', function () { zoom(0.5); });
    $('hist-zoom-out').addEventListener('click', function () { zoom(2); });
    $('hist-back').addEventListener('click', function () {
      if (previous.length) set(previous.pop(), false);
    });
    var to = nowS();
    current = { from: to - 3600, to: to, preset: 3600 };
    render();
  }

  AW.history = AW.history || {};
  AW.history.range = {
    on: bus.on,
    start: start,
    zoomTo: zoomTo,
    /** A preset range moves on to end now (no Back step); a fixed range stays. */
    refresh: function () { if (current.preset) preset(current.preset, false); },
    get current() { return current; }
  };
})(window.AnomalyWatch);
