/* The EV view's overview: the cards (sessions, critical, warnings, counts per type), the tabs
 * per anomaly type, the search and filters, and the top users and chargers by risk. A click on
 * a top user or charger searches for it.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;
  var setText = dom.setText;

  var LABELS = { all: 'All', billing_fraud: 'Billing fraud', dos_attack: 'DoS attack',
    multi_user_conflict: 'Multi-user conflict' };
  var tabs = new Map(); // type -> {button, count}
  var frame = false;

  function label(type) {
    return LABELS[type] || type.replace(/_/g, ' ').replace(/^./, function (c) { return c.toUpperCase(); });
  }

  function stat(id, value) { setText($(id).querySelector('[data-role="value"]'), value); }

  function ensureTab(type) {
    if (tabs.has(type)) return tabs.get(type);
    var button = el('button', 'ev-tab', null, { type: 'button', role: 'tab', 'aria-selected': 'false' });
    button.dataset.type = type;
    button.appendChild(el('span', null, label(type)));
    var count = el('span', 'seg-count', '0');
    button.appendChild(count);
    button.addEventListener('click', function () { AW.ev.store.setFilter({ type: type }); });
    $('ev-tabs').appendChild(button);
    var tab = { button: button, count: count };
    tabs.set(type, tab);
    return tab;
  }

  function renderTop(listId, entries, entity, searching) {
    var list = $(listId);
    dom.clear(list);
    if (!entries.length) {
      list.appendChild(el('li', 'empty', searching ? 'None matches these filters.' : 'None yet.'));
      return;
    }
    entries.forEach(function (e) {
      var li = el('li');
      var button = el('button', 'ev-top-row', null, { type: 'button',
        'aria-label': 'Show the sessions of ' + entity + ' ' + e.id + ', highest risk ' + e.risk });
      button.appendChild(el('span', 'ev-top-id', e.id));
      if (e.flagged && entity === 'user') button.appendChild(el('span', 'badge badge-flag', 'flagged'));
      var bar = el('span', 'risk-bar', null, { 'aria-hidden': 'true' });
      var fill = el('span', 'risk-fill risk-' + riskBand(e.risk));
      fill.style.width = Math.max(0, Math.min(100, e.risk)) + '%';
      bar.appendChild(fill);
      button.appendChild(bar);
      button.appendChild(el('span', 'ev-top-risk num', String(e.risk)));
      button.appendChild(el('span', 'ev-top-count', fmt.count(e.count) + (e.count === 1 ? ' session' : ' sessions')));
      button.addEventListener('click', function () {
        $('ev-search').value = e.id;
        AW.ev.store.setFilter({ query: e.id.toLowerCase() });
      });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function riskBand(risk) {
    if (!fmt.isNum(risk)) return 'low';
    if (risk >= 85) return 'critical';
    if (risk >= 65) return 'high';
    if (risk >= 40) return 'medium';
    return 'low';
  }

  /** The server's top entities (GET /api/events/summary), in the shape renderTop draws. */
  function serverTop(summary, key) {
    var list = summary && summary.top && Array.isArray(summary.top[key]) ? summary.top[key] : null;
    if (!list) return null;
    return list.slice(0, 5).map(function (e) {
      return { id: String(e.id), risk: fmt.isNum(e.max_risk) ? e.max_risk : 0,
        count: fmt.isNum(e.anomalies) ? e.anomalies : 0,
        flagged: key === 'user_id' && AW.ev.store.isFlagged(String(e.id)) };
    });
  }

  function render() {
    var store = AW.ev.store;
    var list = store.filtered();
    var c = store.counts(list);
    // The cards count everything the server scored; without its summary, what the page holds.
    var summary = store.state.summary;
    var whole = summary ? {
      sessions: summary.events,
      critical: (summary.severities || {}).critical || 0,
      warnings: (summary.anomalies || 0) - ((summary.severities || {}).critical || 0),
      types: summary.types || {}
    } : { sessions: null, critical: c.critical, warnings: c.warnings, types: c.types };
    stat('ev-stat-sessions', whole.sessions === null ? fmt.count(store.all.size) : fmt.count(whole.sessions));
    setText($('ev-stat-sessions').querySelector('[data-role="sub"]'),
      whole.sessions === null ? 'anomalous sessions loaded'
        : 'scored · ' + fmt.count(summary.anomalies || 0) + ' anomalous');
    // The built-in feed's sessions start in simulated time (from 1 Jan 2026): say so, or its dates
    // read as wrong. Uploaded and replayed sessions keep their own times.
    var clocks = summary && Array.isArray(summary.clocks) ? summary.clocks : [];
    var clockNote = $('ev-clock');
    clockNote.hidden = !clocks.length;
    setText(clockNote, clocks.map(function (c) {
      return 'Built-in feed: sessions in simulated time (' + fmt.count(c.speed) + '× real time), now at ' +
        fmt.dateTime(c.now) + '.';
    }).join(' '));
    stat('ev-stat-critical', fmt.count(whole.critical));
    stat('ev-stat-warnings', fmt.count(whole.warnings));

    var types = store.TYPES.slice();
    [whole.types, c.types].forEach(function (counts) {
      Object.keys(counts).forEach(function (t) { if (types.indexOf(t) < 0) types.push(t); });
    });
    var counts = $('ev-type-counts');
    dom.clear(counts);
    types.forEach(function (t) {
      var li = el('li', 'ev-type-count');
      li.dataset.type = t;
      li.appendChild(el('span', 'ev-type-name', label(t)));
      li.appendChild(el('span', 'ev-type-value num', fmt.count(whole.types[t] || 0)));
      counts.appendChild(li);
    });

    // The tabs count the sessions the table can show under the current filters.
    ['all'].concat(types).forEach(function (t) {
      var tab = ensureTab(t);
      setText(tab.count, fmt.count(t === 'all' ? c.all : (c.types[t] || 0)));
      var on = store.state.type === t;
      tab.button.setAttribute('aria-selected', on ? 'true' : 'false');
      tab.button.tabIndex = on ? 0 : -1;
    });

    var searching = Boolean(store.state.query || store.state.severity || store.state.hideAcked);
    renderTop('ev-top-users', (!searching && serverTop(summary, 'user_id')) || store.top('user_id', list, 5), 'user',
      searching);
    renderTop('ev-top-chargers', (!searching && serverTop(summary, 'charger_id')) || store.top('charger_id', list, 5),
      'charger', searching);
  }

  function renderSoon() {
    if (frame) return;
    frame = true;
    window.requestAnimationFrame(function () { frame = false; render(); });
  }

  /** Arrow keys move between tabs, as a tab list should. */
  function onTabKey(evt) {
    if (evt.key !== 'ArrowRight' && evt.key !== 'ArrowLeft') return;
    var buttons = Array.from(tabs.values()).map(function (t) { return t.button; });
    var at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    var next = buttons[(at + (evt.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length];
    next.focus();
    next.click();
    evt.preventDefault();
  }

  function start() {
    var store = AW.ev.store;
    var search = $('ev-search');
    var timer = null;
    search.addEventListener('input', function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        store.setFilter({ query: search.value.trim().toLowerCase() });
      }, 120);
    });
    $('ev-severity').addEventListener('change', function (evt) { store.setFilter({ severity: evt.target.value }); });
    $('ev-hide-acked').addEventListener('change', function (evt) { store.setFilter({ hideAcked: evt.target.checked }); });
    $('ev-tabs').addEventListener('keydown', onTabKey);
    store.on('data', renderSoon);
    store.on('filters', renderSoon);
    render();
  }

  AW.ev = AW.ev || {};
  AW.ev.summary = { start: start, riskBand: riskBand, label: label };
})(window.AnomalyWatch);
