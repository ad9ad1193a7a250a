/* The history view's stream picker: a search box over every stream the page knows (built-in and
 * user; there may be thousands), listing the best MAX_SHOWN matches to pick by click or keyboard
 * (ArrowUp/ArrowDown, Enter, Escape). A <select> of a thousand names cannot be searched; this can.
 * Names starting with the query come first, then names containing it, then descriptions.
 *
 *   AnomalyWatch.history.picker.on('change', fn)   fn(name)   the person picked another stream
 *   AnomalyWatch.history.picker.selected                     the stream shown, or ''
 *   AnomalyWatch.history.picker.select(name)                 show a stream (no 'change'); false if unknown
 *   AnomalyWatch.history.picker.selectDefault()              the last one picked, else the first by name
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var el = dom.el;
  var $ = dom.$;

  var MAX_SHOWN = 50;
  var STREAM_KEY = 'anomalywatch.history.stream';

  var bus = AW.emitter();
  var selected = '';
  var listed = [];   // the streams in the open list, best match first
  var active = -1;   // index in listed of the highlighted option

  /** How well a stream matches a lower-case query: 0 best, 2 worst, -1 not at all. */
  function rank(stream, query) {
    var at = stream.name.toLowerCase().indexOf(query);
    if (at === 0) return 0;
    if (at > 0) return 1;
    return String(stream.info.description || '').toLowerCase().indexOf(query) >= 0 ? 2 : -1;
  }

  function search(text) {
    var query = text.trim().toLowerCase();
    var found = [];
    AW.streams.all.forEach(function (stream) {
      var r = query ? rank(stream, query) : 0;
      if (r >= 0) found.push({ stream: stream, rank: r });
    });
    found.sort(function (a, b) {
      return a.rank - b.rank || (a.stream.name < b.stream.name ? -1 : a.stream.name > b.stream.name ? 1 : 0);
    });
    return found.map(function (f) { return f.stream; });
  }

  function input() { return $('hist-stream'); }

  function highlight(index) {
    var options = $('hist-stream-list').children;
    if (active >= 0 && options[active]) options[active].classList.remove('is-active');
    active = index;
    if (active < 0) { input().removeAttribute('aria-activedescendant'); return; }
    options[active].classList.add('is-active');
    input().setAttribute('aria-activedescendant', options[active].id);
    options[active].scrollIntoView({ block: 'nearest' });
  }

  function optionFor(stream, i) {
    var option = el('li', 'picker-option', null, { role: 'option', id: 'hist-stream-option-' + i,
      'data-stream': stream.name, 'aria-selected': String(stream.name === selected) });
    option.appendChild(el('span', 'picker-name mono', stream.name));
    if (stream.info.kind === 'user') option.appendChild(el('span', 'badge badge-user', 'user'));
    return option;
  }

  function showList(text) {
    var found = search(text);
    listed = found.slice(0, MAX_SHOWN);
    var list = $('hist-stream-list');
    dom.clear(list);
    active = -1;
    listed.forEach(function (stream, i) { list.appendChild(optionFor(stream, i)); });
    var note = '';
    if (!found.length) note = 'No stream matches “' + text.trim() + '”.';
    else if (found.length > listed.length) note = 'The first ' + listed.length + ' of ' + AW.fmt.count(found.length) + ' matches; type more to narrow.';
    dom.setText($('hist-stream-note'), note);
    $('hist-stream-popup').hidden = false;
    input().setAttribute('aria-expanded', 'true');
    if (listed.length) highlight(0);
  }

  /** Closes the list and shows the chosen stream's name again in the box. */
  function closeList() {
    $('hist-stream-popup').hidden = true;
    input().setAttribute('aria-expanded', 'false');
    input().removeAttribute('aria-activedescendant');
    input().value = selected;
    listed = [];
    active = -1;
  }

  function select(name) {
    if (!AW.streams.all.has(name)) return false;
    selected = name;
    input().value = name;
    return true;
  }

  /** A pick by the person: remembered for the next visit, and announced. */
  function pick(name) {
    var changed = name !== selected;
    if (!select(name)) return;
    dom.store(STREAM_KEY, name);
    closeList();
    if (changed) bus.emit('change', name);
  }

  function selectDefault() {
    var remembered = dom.stored(STREAM_KEY, '');
    if (select(remembered)) return true;
    var first = search('')[0];
    return first ? select(first.name) : false;
  }

  function onKey(evt) {
    var closed = $('hist-stream-popup').hidden;
    if (evt.key === 'ArrowDown' || evt.key === 'ArrowUp') {
      evt.preventDefault();
      if (closed) { showList(input().value === selected ? '' : input().value); return; }
      if (!listed.length) return;
      var step = evt.key === 'ArrowDown' ? 1 : -1;
      highlight((active + step + listed.length) % listed.length);
    } else if (evt.key === 'Enter') {
      evt.preventDefault();
      if (!closed && active >= 0) pick(listed[active].name);
    } else if (evt.key === 'Escape' && !closed) {
      evt.preventDefault(); // the list closes, not the view or a dialog
      closeList();
    }
  }

  function start() {
    var box = input();
    box.addEventListener('focus', function () {
      box.select();
      showList('');
    });
    box.addEventListener('input', function () { showList(box.value); });
    box.addEventListener('keydown', onKey);
    box.addEventListener('blur', closeList);
    var list = $('hist-stream-list');
    // Pressing an option must not blur the box first (that would close the list under the pointer).
    list.addEventListener('mousedown', function (evt) { evt.preventDefault(); });
    list.addEventListener('click', function (evt) {
      var option = evt.target.closest('[data-stream]');
      if (option) pick(option.dataset.stream);
    });
  }

  AW.history = AW.history || {};
  AW.history.picker = {
    on: bus.on,
    start: start,
    select: select,
    selectDefault: selectDefault,
    get selected() { return selected; }
  };
})(window.AnomalyWatch);
