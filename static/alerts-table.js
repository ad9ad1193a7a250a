/* The alerts page's table: a tab per state (firing, pending, resolved), a text filter, one row
 * per alert with its subject, type, peak severity, points, start and end, and its actions
 * (acknowledge, silence, resolve: alerts-actions.js). Rows are keyed by alert id and only the
 * rows whose alert changed are rebuilt, so a live update never steals focus from a button.
 * A stream's alert opens its history; an alert of EV sessions (its `anomalies` link is set)
 * opens the EV view on its entity and type, where each session is acknowledged on its own.
 *
 * Many alerts (an upload of sessions may open thousands) are grouped: by stream, or by subject
 * (a stream, or one entity of a schema's events), each group a header row with its count and
 * worst severity that opens and closes it. "Automatic" groups by stream once a tab holds more
 * than GROUP_OVER alerts. A group of more than GROUP_OPEN_MAX alerts starts closed, a smaller
 * one open (a new alert of a quiet stream is seen at once); a text filter opens them all.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;

  var AGE_EVERY_MS = 15000;
  var GROUP_OVER = 30;
  var GROUP_OPEN_MAX = 10;

  var state = 'firing';
  var query = '';
  var rows = new Map(); // alert id -> {tr, alert}
  var visible = false;
  var grouping = 'auto'; // auto | none | stream | subject
  var chosen = new Map(); // group key -> open (true) or closed (false), as the user left it
  var headers = new Map(); // group key -> header row

  /** The grouping in force for a tab of ``count`` alerts. */
  function groupingFor(count) {
    if (grouping === 'auto') return count > GROUP_OVER ? 'stream' : 'none';
    return grouping;
  }

  function groupKey(alert, by) {
    return by === 'stream' ? alert.stream : subject(alert);
  }

  /** Alerts in groups, in the order of each group's newest alert (the list is newest first). */
  function groupsOf(list, by) {
    var groups = new Map();
    list.forEach(function (alert) {
      var key = groupKey(alert, by);
      var group = groups.get(key);
      if (!group) {
        group = { key: key, alerts: [], worst: -1 };
        groups.set(key, group);
      }
      group.alerts.push(alert);
      group.worst = Math.max(group.worst, AW.SEVERITIES.indexOf(alert.severity));
    });
    return Array.from(groups.values());
  }

  function headerText(group) {
    var n = group.alerts.length;
    var worst = group.worst >= 0 ? ', worst ' + AW.SEVERITIES[group.worst] : '';
    return group.key + ' — ' + fmt.count(n) + (n === 1 ? ' alert' : ' alerts') + worst;
  }

  /** A group's header row (kept per key, its text and state changed in place). */
  function headerRow(group, open) {
    var tr = headers.get(group.key);
    if (!tr) {
      tr = el('tr', 'alert-group', null, { 'data-group': group.key });
      var th = el('th', null, null, { colspan: '8', scope: 'rowgroup' });
      var button = el('button', 'alert-group-toggle', null, { type: 'button' });
      button.appendChild(el('span', 'alert-group-mark', null, { 'aria-hidden': 'true' }));
      button.appendChild(el('span', 'alert-group-text'));
      button.addEventListener('click', function () {
        chosen.set(group.key, button.getAttribute('aria-expanded') !== 'true');
        render();
      });
      th.appendChild(button);
      tr.appendChild(th);
      headers.set(group.key, tr);
    }
    var toggle = tr.querySelector('button');
    toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    dom.setText(tr.querySelector('.alert-group-mark'), open ? '▾' : '▸');
    dom.setText(tr.querySelector('.alert-group-text'), headerText(group));
    tr.className = 'alert-group sev-border-' + (AW.SEVERITIES[group.worst] || 'low');
    return tr;
  }

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
      'aria-label': 'History of ' + alert.stream + ' around this alert', title: 'The stream around this alert' });
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
    tr.appendChild(el('td', 'mono alert-subject', subject(alert), { title: alert.summary || '' }));
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

  /** The row of ``alert``, rebuilt only when the alert changed. */
  function rowOf(body, alert) {
    var known = rows.get(alert.id);
    var tr = known && known.alert === alert ? known.tr : buildRow(alert);
    if (known && known.tr !== tr && known.tr.parentNode === body) body.replaceChild(tr, known.tr);
    rows.set(alert.id, { tr: tr, alert: alert });
    return tr;
  }

  function render() {
    if (!visible) return;
    var body = $('alerts-table').querySelector('tbody');
    var wanted = AW.alerts.store.list(state).filter(matches);
    var by = groupingFor(wanted.length);
    var sequence = [];
    var shown = new Set();
    if (by === 'none') {
      wanted.forEach(function (alert) { sequence.push(rowOf(body, alert)); shown.add(alert.id); });
    } else {
      groupsOf(wanted, by).forEach(function (group) {
        var open = Boolean(query) || (chosen.has(group.key) ? chosen.get(group.key)
          : group.alerts.length <= GROUP_OPEN_MAX);
        sequence.push(headerRow(group, open));
        if (!open) return;
        group.alerts.forEach(function (alert) { sequence.push(rowOf(body, alert)); shown.add(alert.id); });
      });
    }
    var keep = new Set(sequence);
    var before = null;
    for (var i = sequence.length - 1; i >= 0; i--) {
      var tr = sequence[i];
      if (tr.parentNode !== body || tr.nextSibling !== before) body.insertBefore(tr, before);
      before = tr;
    }
    Array.prototype.slice.call(body.children).forEach(function (tr) {
      if (!keep.has(tr)) body.removeChild(tr);
    });
    rows.forEach(function (row, id) { if (!shown.has(id)) rows.delete(id); });
    headers.forEach(function (tr, key) { if (!keep.has(tr)) headers.delete(key); });
    $('alerts-empty').hidden = wanted.length > 0;
  }

  /** The grouping control, beside the text filter (this module owns the alerts table's tools). */
  function groupControl() {
    var label = el('label', 'field field-inline sort-field');
    label.appendChild(el('span', 'field-label', 'Group'));
    var select = el('select', null, null, { id: 'alerts-group' });
    [['auto', 'automatic'], ['none', 'no grouping'], ['stream', 'by stream'], ['subject', 'by stream and entity']]
      .forEach(function (option) {
        var node = el('option', null, option[1], { value: option[0] });
        select.appendChild(node);
      });
    select.addEventListener('change', function () {
      grouping = select.value;
      render();
    });
    label.appendChild(select);
    $('alerts-search').closest('.ev-tools').appendChild(label);
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
    groupControl();
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
