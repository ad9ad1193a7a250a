/* The alerts page's table: a tab per state (firing, pending, resolved), a text filter, one row
 * per alert with its subject, type, peak severity, points, start and end, and its actions
 * (acknowledge, silence, resolve: alerts-actions.js). Rows are keyed by alert id and only the
 * rows whose alert changed are rebuilt, so a live update never steals focus from a button.
 * A stream's alert opens its history; an alert of EV sessions (its `anomalies` link is set)
 * opens the EV view on its entity and type, where each session is acknowledged on its own.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;

  var AGE_EVERY_MS = 15000;

  var state = 'firing';
  var query = '';
  var rows = new Map(); // alert id -> {tr, alert}
  var visible = false;

  function subject(alert) {
    return alert.entity ? alert.stream + ' / ' + alert.entity : alert.stream;
  }

  function sevBadge(severity) {
    return el('span', 'sev sev-' + (AW.SEVERITIES.indexOf(severity) >= 0 ? severity : 'low'), severity || '—');
  }

  function statusCell(alert) {
    var td = el('td', 'ev-status');
    if (alert.state === 'resolved') td.appendChild(el('span', 'badge', resolutionText(alert)));
    if (alert.acknowledged_by) {
      var ack = el('span', 'badge badge-ack', 'ack: ' + alert.acknowledged_by);
      if (alert.ack_note) ack.title = alert.ack_note;
      td.appendChild(ack);
    }
    if (alert.silenced_by && alert.silenced_by.length) {
      td.appendChild(el('span', 'badge badge-silenced', 'silenced', { title: 'by silence ' + alert.silenced_by.join(', ') }));
    }
    return td;
  }

  /** How it ended, in words: the `resolution` the server records (quiet, dropped, by hand, ...). */
  function resolutionText(alert) {
    switch (alert.resolution) {
      case 'quiet': return 'resolved (quiet)';
      case 'dropped': return 'dropped (never fired)';
      case 'by hand': return 'resolved by ' + (alert.resolved_by || 'hand');
      case 'not an anomaly': return 'not an anomaly (' + (alert.resolved_by || '?') + ')';
      default: return alert.resolution || 'resolved';
    }
  }

  function actionButton(label, action, alert) {
    var button = el('button', 'btn btn-small', label, { type: 'button', 'data-action': action });
    button.addEventListener('click', function () { AW.alerts.actions.open(action, alert.id); });
    return button;
  }

  /** The alert's stream in the history view, from a little before it started to a little after it ended. */
  function historyButton(alert) {
    var button = el('button', 'btn btn-small btn-ghost', 'History', { type: 'button', 'data-action': 'history',
      title: 'The stream around this alert' });
    button.addEventListener('click', function () {
      var end = alert.resolved_at || Date.now() / 1000;
      if (!AW.history.chart.openAround(alert.stream, alert.started_at, end)) {
        showMessage('The stream ' + alert.stream + ' is gone.', true);
      }
    });
    return button;
  }

  /** The entity's anomalous sessions in the EV view, under the alert's type. */
  function sessionsButton(alert) {
    var button = el('button', 'btn btn-small btn-ghost', 'Sessions', { type: 'button', 'data-action': 'sessions',
      title: 'The anomalous sessions of ' + alert.entity + ' (each acknowledged on its own)' });
    button.addEventListener('click', function () {
      var id = alert.entity.slice(alert.entity.indexOf('=') + 1);
      var store = AW.ev.store;
      $('ev-search').value = id;
      store.setFilter({ query: id.toLowerCase(), type: store.TYPES.indexOf(alert.type) >= 0 ? alert.type : 'all' });
      window.location.hash = '#ev';
    });
    return button;
  }

  /** An alert of the EV view's schema: its sessions are there. */
  function isSessionsAlert(alert) {
    return Boolean(alert.anomalies && alert.entity && AW.ev && AW.ev.api && alert.stream === AW.ev.api.SCHEMA);
  }

  function endedText(alert) {
    return alert.resolved_at ? fmt.dateTime(alert.resolved_at)
      : 'open ' + fmt.duration(Date.now() / 1000 - alert.started_at);
  }

  /** Open alerts' ages move on with the clock, not with events. */
  function refreshAges() {
    if (!visible) return;
    rows.forEach(function (row) {
      if (!row.alert.resolved_at) dom.setText(row.tr.querySelector('.alert-ended'), endedText(row.alert));
    });
  }

  function buildRow(alert) {
    var tr = el('tr', 'alert-row sev-border-' + (alert.severity || 'low'), null,
      { 'data-alert-id': String(alert.id), 'data-state': alert.state });
    tr.appendChild(el('td')).appendChild(sevBadge(alert.severity));
    tr.appendChild(el('td', 'mono', subject(alert), { title: alert.summary || '' }));
    tr.appendChild(el('td', null, alert.type));
    tr.appendChild(el('td', 'num', fmt.count(alert.points)));
    tr.appendChild(el('td', 'nowrap', fmt.dateTime(alert.started_at)));
    tr.appendChild(el('td', 'nowrap alert-ended', endedText(alert)));
    tr.appendChild(statusCell(alert));
    var actions = el('td', 'alert-actions');
    if (isSessionsAlert(alert)) actions.appendChild(sessionsButton(alert));
    else if (!alert.anomalies) actions.appendChild(historyButton(alert));
    if (alert.state !== 'resolved') {
      if (!alert.acknowledged_at) actions.appendChild(actionButton('Acknowledge', 'acknowledge', alert));
      actions.appendChild(actionButton('Silence', 'silence', alert));
      actions.appendChild(actionButton('Resolve', 'resolve', alert));
    } else {
      actions.appendChild(actionButton('Silence', 'silence', alert));
    }
    tr.appendChild(actions);
    return tr;
  }

  function matches(alert) {
    if (!query) return true;
    return (alert.stream + ' ' + (alert.entity || '') + ' ' + alert.type).toLowerCase().indexOf(query) >= 0;
  }

  function render() {
    if (!visible) return;
    var body = $('alerts-table').querySelector('tbody');
    var wanted = AW.alerts.store.list(state).filter(matches);
    var keep = new Set();
    var before = null;
    for (var i = wanted.length - 1; i >= 0; i--) {
      var alert = wanted[i];
      var known = rows.get(alert.id);
      var tr = known && known.alert === alert ? known.tr : buildRow(alert);
      if (known && known.tr !== tr) body.replaceChild(tr, known.tr);
      rows.set(alert.id, { tr: tr, alert: alert });
      keep.add(alert.id);
      if (tr.parentNode !== body || tr.nextSibling !== before) body.insertBefore(tr, before);
      before = tr;
    }
    rows.forEach(function (row, id) {
      if (!keep.has(id)) {
        if (row.tr.parentNode) row.tr.parentNode.removeChild(row.tr);
        rows.delete(id);
      }
    });
    $('alerts-empty').hidden = wanted.length > 0;
  }

  function renderCounts(counts) {
    Array.prototype.forEach.call($('alerts-tabs').querySelectorAll('[data-state]'), function (tab) {
      var count = tab.querySelector('[data-role="count"]');
      if (count) dom.setText(count, fmt.count(counts[tab.dataset.state]));
    });
  }

  function select(next) {
    state = next;
    Array.prototype.forEach.call($('alerts-tabs').querySelectorAll('[data-state]'), function (tab) {
      tab.setAttribute('aria-selected', tab.dataset.state === next ? 'true' : 'false');
    });
    if (next === 'resolved' && !AW.alerts.store.resolvedLoaded) {
      AW.alerts.store.loadResolved().catch(function (err) { showMessage(err.message, true); });
    }
    render();
  }

  function showMessage(text, isError) {
    var box = $('alerts-message');
    dom.setText(box, text || '');
    box.classList.toggle('is-error', Boolean(isError));
  }

  function start() {
    Array.prototype.forEach.call($('alerts-tabs').querySelectorAll('[data-state]'), function (tab) {
      tab.addEventListener('click', function () { select(tab.dataset.state); });
    });
    $('alerts-search').addEventListener('input', function (evt) {
      query = evt.target.value.trim().toLowerCase();
      render();
    });
    AW.alerts.store.on('change', render);
    window.setInterval(refreshAges, AGE_EVERY_MS);
    AW.alerts.store.on('counts', renderCounts);
    AW.views.on('shown', function (name) {
      visible = name === 'alerts';
      if (visible) select(state);
    });
  }

  AW.alerts = AW.alerts || {};
  AW.alerts.table = { start: start, select: select, showMessage: showMessage };
})(window.AnomalyWatch);
