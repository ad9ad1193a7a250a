/* The EV view's table of anomalous sessions: sorted by a click on a column header, filtered by
 * the tab, search, severity and acknowledgement filters (ev-store.js), a page of rows at a
 * time. A click (or Enter) on a row opens the session in the detail panel.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;

  var PAGE_ROWS = 50;
  var COLUMNS = [
    { key: 'risk', label: 'Risk', num: true },
    { key: 'severity', label: 'Severity' },
    { key: 'session_id', label: 'Session' },
    { key: 'user_id', label: 'User' },
    { key: 'charger_id', label: 'Charger' },
    { key: 'start', label: 'Start' },
    { key: 'duration', label: 'Min', num: true, title: 'Duration, minutes' },
    { key: 'energy', label: 'kWh', num: true, title: 'Energy, kWh' },
    { key: 'payment', label: 'Paid', num: true, title: 'Payment' },
    { key: 'types', label: 'Types' },
    { key: 'status', label: 'Status', sortable: false }
  ];

  var limit = PAGE_ROWS;
  var headers = new Map(); // key -> th
  var frame = false;

  function buildHead() {
    var tr = $('ev-table').querySelector('thead tr');
    COLUMNS.forEach(function (col) {
      var th = el('th', col.num ? 'num' : '', null, { scope: 'col' });
      if (col.sortable === false) {
        th.textContent = col.label;
      } else {
        var button = el('button', 'sort-button', col.label, { type: 'button' });
        if (col.title) button.title = col.title;
        button.addEventListener('click', function () {
          var sort = AW.ev.store.state.sort;
          var desc = sort.key === col.key ? !sort.desc : (col.num || col.key === 'start' || col.key === 'severity');
          AW.ev.store.setFilter({ sort: { key: col.key, desc: desc } });
        });
        th.appendChild(button);
      }
      headers.set(col.key, th);
      tr.appendChild(th);
    });
  }

  function cell(tr, text, className) {
    var td = el('td', className || '', text);
    tr.appendChild(td);
    return td;
  }

  function typeChips(types) {
    var wrap = el('span', 'chips');
    types.forEach(function (t) { wrap.appendChild(el('span', 'chip chip-' + t, AW.ev.summary.label(t))); });
    return wrap;
  }

  function buildRow(s, selectedKey) {
    var tr = el('tr', 'ev-row' + (s.key === selectedKey ? ' is-selected' : ''), null, { tabindex: '0' });
    tr.dataset.key = s.key;
    tr.dataset.session = s.session_id;
    var riskCell = el('td', 'num');
    var riskWrap = el('span', 'risk-wrap');
    var bar = el('span', 'risk-bar', null, { 'aria-hidden': 'true' });
    var fill = el('span', 'risk-fill risk-' + AW.ev.summary.riskBand(s.risk));
    fill.style.width = (fmt.isNum(s.risk) ? Math.max(0, Math.min(100, s.risk)) : 0) + '%';
    bar.appendChild(fill);
    riskWrap.appendChild(bar);
    riskWrap.appendChild(el('span', 'num', fmt.isNum(s.risk) ? String(s.risk) : '—'));
    riskCell.appendChild(riskWrap);
    tr.appendChild(riskCell);
    var sevCell = el('td');
    sevCell.appendChild(s.severity ? el('span', 'sev sev-' + s.severity, s.severity) : el('span', 'muted', '—'));
    tr.appendChild(sevCell);
    cell(tr, s.session_id, 'mono');
    cell(tr, s.user_id, 'mono');
    cell(tr, s.charger_id, 'mono');
    cell(tr, fmt.dateTime(s.start), 'nowrap');
    cell(tr, fmt.value(s.duration), 'num');
    cell(tr, fmt.value(s.energy), 'num');
    cell(tr, fmt.value(s.payment), 'num');
    var typesCell = el('td');
    typesCell.appendChild(typeChips(s.types));
    tr.appendChild(typesCell);
    var status = el('td', 'ev-status');
    if (s.acknowledged) status.appendChild(el('span', 'badge badge-ack', 'acknowledged'));
    if (s.user_flagged) status.appendChild(el('span', 'badge badge-flag', 'user flagged'));
    else if (s.flagged) status.appendChild(el('span', 'badge badge-flag', 'flagged entity'));
    tr.appendChild(status);
    tr.addEventListener('click', function () { AW.ev.store.select(s); });
    tr.addEventListener('keydown', function (evt) {
      if (evt.key === 'Enter' || evt.key === ' ') { evt.preventDefault(); AW.ev.store.select(s); }
    });
    return tr;
  }

  function render() {
    var store = AW.ev.store;
    var rows = store.rows();
    var sort = store.state.sort;
    headers.forEach(function (th, key) {
      if (key === sort.key) th.setAttribute('aria-sort', sort.desc ? 'descending' : 'ascending');
      else th.removeAttribute('aria-sort');
    });
    var tbody = $('ev-table').querySelector('tbody');
    dom.clear(tbody);
    var selectedKey = store.state.selected ? store.state.selected.key : null;
    var fragment = document.createDocumentFragment();
    rows.slice(0, limit).forEach(function (s) { fragment.appendChild(buildRow(s, selectedKey)); });
    tbody.appendChild(fragment);
    var empty = $('ev-empty');
    empty.hidden = rows.length > 0;
    if (store.all.size && !rows.length) dom.setText(empty, 'No anomalous session matches these filters.');
    if (store.state.error && !store.all.size) dom.setText(empty, 'EV sessions cannot be loaded: ' + store.state.error);
    var more = $('ev-more');
    more.hidden = rows.length <= limit;
    var hiddenRows = rows.length - limit;
    dom.setText(more, hiddenRows <= PAGE_ROWS ? 'Show the other ' + fmt.count(hiddenRows)
      : 'Show ' + fmt.count(PAGE_ROWS) + ' more (' + fmt.count(hiddenRows) + ' not shown)');
  }

  function renderSoon() {
    if (frame) return;
    frame = true;
    window.requestAnimationFrame(function () { frame = false; render(); });
  }

  function start() {
    buildHead();
    $('ev-more').addEventListener('click', function () { limit += PAGE_ROWS; render(); });
    AW.ev.store.on('data', renderSoon);
    AW.ev.store.on('filters', function () { limit = PAGE_ROWS; renderSoon(); });
    // Selecting only moves the highlight, so the focused row stays where it is.
    AW.ev.store.on('selected', function (s) {
      Array.prototype.forEach.call($('ev-table').querySelectorAll('tbody tr'), function (tr) {
        tr.classList.toggle('is-selected', Boolean(s) && tr.dataset.key === s.key);
      });
    });
    render();
  }

  AW.ev = AW.ev || {};
  AW.ev.table = { start: start };
})(window.AnomalyWatch);
