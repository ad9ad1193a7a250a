/* The EV view's detail panel: the selected session, its risk and severity, the evidence (rules
 * and baselines that flagged it), the user's recent sessions as a chart, and the actions:
 * flag the user (their sessions are marked from then on) and acknowledge the alert (who,
 * note; the server stamps when).
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;
  var setText = dom.setText;
  var isNum = fmt.isNum;

  var WHO_KEY = 'anomalyWatch.ackBy';
  var chart = null;
  var shownKey = null;

  function item(dl, label, value, className) {
    var wrap = el('div', 'summary-item');
    wrap.appendChild(el('dt', null, label));
    wrap.appendChild(el('dd', className || null, value));
    dl.appendChild(wrap);
  }

  function message(node, text, isError) {
    setText(node, text);
    node.classList.toggle('is-error', Boolean(isError));
  }

  function riskBlock(s) {
    var box = el('div', 'ev-risk');
    var value = el('p', 'ev-risk-value risk-text-' + AW.ev.summary.riskBand(s.risk));
    value.appendChild(el('span', 'num', isNum(s.risk) ? String(s.risk) : '—'));
    value.appendChild(el('span', 'ev-risk-of', ' / 100 risk'));
    box.appendChild(value);
    var bar = el('span', 'risk-bar risk-bar-wide', null, { 'aria-hidden': 'true' });
    var fill = el('span', 'risk-fill risk-' + AW.ev.summary.riskBand(s.risk));
    fill.style.width = (isNum(s.risk) ? Math.max(0, Math.min(100, s.risk)) : 0) + '%';
    bar.appendChild(fill);
    box.appendChild(bar);
    var tags = el('p', 'ev-risk-tags');
    if (s.severity) tags.appendChild(el('span', 'sev sev-' + s.severity, s.severity));
    s.types.forEach(function (t) { tags.appendChild(el('span', 'chip chip-' + t, AW.ev.summary.label(t))); });
    box.appendChild(tags);
    return box;
  }

  function signalsList(s) {
    var list = el('ul', 'ev-signals');
    s.signals.forEach(function (sig) {
      var li = el('li');
      li.appendChild(el('span', 'ev-signal-origin', sig.origin === 'rule' ? 'rule' : 'baseline'));
      li.appendChild(el('span', 'ev-signal-type', AW.ev.summary.label(String(sig.type || ''))));
      li.appendChild(el('span', 'ev-signal-reason', sig.reason || ''));
      list.appendChild(li);
    });
    return list;
  }

  function flagBlock(s) {
    var box = el('div', 'ev-action');
    var button = el('button', 'btn btn-small', s.user_flagged ? 'Unflag user' : 'Flag user', {
      type: 'button', 'aria-pressed': s.user_flagged ? 'true' : 'false', id: 'ev-flag' });
    var note = el('p', 'form-message', null, { role: 'status', 'aria-live': 'polite' });
    var state = el('span', 'ev-flag-state', s.user_flagged ? 'User ' + s.user_id + ' is flagged: their sessions are marked.'
      : 'Flag ' + s.user_id + ' to mark their sessions from now on.');
    box.appendChild(state);
    box.appendChild(button);
    box.appendChild(note);
    button.addEventListener('click', function () {
      var next = !s.user_flagged;
      button.disabled = true;
      AW.ev.api.flagUser(s.user_id, next, dom.stored(WHO_KEY, '')).then(function () {
        AW.ev.store.markUser(s.user_id, next);
        message(note, next ? 'User ' + s.user_id + ' flagged.' : 'User ' + s.user_id + ' unflagged.', false);
        AW.ev.store.refresh();
      }).catch(function (err) {
        message(note, err.message, true);
      }).then(function () { button.disabled = false; });
    });
    return box;
  }

  function ackBlock(s) {
    var box = el('div', 'ev-action');
    if (s.acknowledged) {
      var a = s.acknowledged;
      box.appendChild(el('p', 'ev-ack-done', 'Acknowledged' + (a.by ? ' by ' + a.by : '') +
        (isNum(a.at) ? ' at ' + fmt.dateTime(a.at) : '') + (a.note ? ': ' + a.note : '') + '.'));
      return box;
    }
    var form = el('form', 'ev-ack-form', null, { novalidate: '', id: 'ev-ack' });
    var who = el('input', null, null, { type: 'text', name: 'by', autocomplete: 'name', required: '',
      placeholder: 'Your name' });
    who.value = dom.stored(WHO_KEY, '');
    var whoLabel = el('label', 'field field-compact');
    whoLabel.appendChild(el('span', 'field-label', 'Acknowledged by'));
    whoLabel.appendChild(who);
    var note = el('input', null, null, { type: 'text', name: 'note', autocomplete: 'off', placeholder: 'What was done (optional)' });
    var noteLabel = el('label', 'field field-compact');
    noteLabel.appendChild(el('span', 'field-label', 'Note'));
    noteLabel.appendChild(note);
    var button = el('button', 'btn btn-small btn-primary', 'Acknowledge', { type: 'submit' });
    var msg = el('p', 'form-message', null, { role: 'status', 'aria-live': 'polite' });
    form.appendChild(whoLabel);
    form.appendChild(noteLabel);
    form.appendChild(button);
    form.appendChild(msg);
    form.addEventListener('submit', function (evt) {
      evt.preventDefault();
      var by = who.value.trim();
      if (!by) { message(msg, 'Say who acknowledges the alert.', true); who.focus(); return; }
      if (s.id === undefined || s.id === null) { message(msg, 'This session has no anomaly id to acknowledge.', true); return; }
      dom.store(WHO_KEY, by);
      button.disabled = true;
      AW.ev.api.acknowledge(s.id, by, note.value.trim()).then(function (body) {
        var ack = body && (body.acknowledged || body.acknowledgement);
        var record = ack && typeof ack === 'object' ? AW.ev.api.session(Object.assign({}, s.raw, { acknowledged: ack })).acknowledged
          : { by: by, at: Date.now() / 1000, note: note.value.trim() };
        AW.ev.store.markAcknowledged(s.key, record);
        AW.ev.store.refresh();
      }).catch(function (err) {
        message(msg, err.message, true);
        button.disabled = false;
      });
    });
    box.appendChild(form);
    return box;
  }

  function drawUserChart(canvas, s, sessions) {
    if (chart) { chart.destroy(); chart = null; }
    if (typeof window.Chart !== 'function') return;
    var normal = [];
    var anomalous = [];
    sessions.forEach(function (x) {
      if (!isNum(x.start) || !isNum(x.energy)) return;
      var point = { x: x.start * 1000, y: x.energy, key: x.key };
      (x.is_anomaly ? anomalous : normal).push(point);
    });
    var sort = function (a, b) { return a.x - b.x; };
    normal.sort(sort);
    anomalous.sort(sort);
    chart = new Chart(canvas, {
      type: 'scatter',
      data: { datasets: [
        { label: 'sessions', data: normal, pointRadius: 3, pointBackgroundColor: '#4cc9f0', borderColor: '#4cc9f0' },
        { label: 'anomalous', data: anomalous, pointRadius: 4.5, pointBackgroundColor: '#ff4d5e', borderColor: '#1b0b10' }
      ] },
      options: {
        animation: false, parsing: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: false }, tooltip: { callbacks: {
          label: function (ctx) { return ' ' + fmt.dateTime(ctx.parsed.x / 1000) + ': ' + fmt.value(ctx.parsed.y) + ' kWh'; }
        } } },
        scales: {
          x: { type: 'linear', afterBuildTicks: AW.timeAxis.ticks(4),
            ticks: { maxTicksLimit: 4, callback: AW.timeAxis.label },
            grid: { color: 'rgba(148, 163, 204, 0.10)' } },
          y: { title: { display: true, text: 'kWh' }, ticks: { maxTicksLimit: 4 }, grid: { color: 'rgba(148, 163, 204, 0.10)' } }
        }
      }
    });
  }

  function userChart(s) {
    var box = el('div', 'ev-user');
    box.appendChild(el('h4', 'detail-section', 'Recent sessions of ' + s.user_id));
    var holder = el('div', 'ev-user-chart');
    var canvas = el('canvas', null, null, { role: 'img', 'aria-label': 'Energy of the recent sessions of ' + s.user_id });
    holder.appendChild(canvas);
    box.appendChild(holder);
    var note = el('p', 'ev-user-note muted', 'Loading…');
    box.appendChild(note);
    var known = [];
    AW.ev.store.all.forEach(function (x) { if (x.user_id === s.user_id) known.push(x); });
    AW.ev.api.userSessions(s.user_id).then(function (sessions) {
      return { sessions: sessions, complete: true };
    }).catch(function () {
      return { sessions: known, complete: false }; // the anomalies the page has, at least
    }).then(function (answer) {
      if (shownKey !== s.key) return;
      var list = answer.sessions.length ? answer.sessions : known;
      drawUserChart(canvas, s, list);
      var anomalous = list.filter(function (x) { return x.is_anomaly; }).length;
      setText(note, fmt.count(list.length) + (list.length === 1 ? ' session' : ' sessions') + ', ' +
        fmt.count(anomalous) + ' anomalous' + (answer.complete ? '' : ' (anomalous sessions only)') +
        ' · energy per session, red: anomalous');
    });
    return box;
  }

  function render(s) {
    var body = $('ev-detail-body');
    if (chart) { chart.destroy(); chart = null; }
    dom.clear(body);
    shownKey = s ? s.key : null;
    $('ev-detail-empty').hidden = Boolean(s);
    body.hidden = !s;
    setText($('ev-detail-title'), s ? 'Session ' + s.session_id : 'Session');
    if (!s) return;
    body.appendChild(riskBlock(s));
    var dl = el('dl', 'detail-summary ev-fields');
    item(dl, 'User', s.user_id, 'mono');
    item(dl, 'Charger', s.charger_id, 'mono');
    item(dl, 'Start', fmt.dateTime(s.start));
    item(dl, 'Duration', isNum(s.duration) ? fmt.value(s.duration) + ' min' : '—');
    item(dl, 'Energy', isNum(s.energy) ? fmt.value(s.energy) + ' kWh' : '—');
    item(dl, 'Payment', fmt.value(s.payment));
    item(dl, 'Paid per kWh', fmt.value(s.payment_per_kwh));
    if (s.ip_address) item(dl, 'IP address', s.ip_address, 'mono');
    body.appendChild(dl);
    if (s.explanation) body.appendChild(el('p', 'detail-explain', s.explanation));
    if (s.signals.length) {
      body.appendChild(el('h4', 'detail-section', 'Evidence'));
      body.appendChild(signalsList(s));
    }
    body.appendChild(el('h4', 'detail-section', 'Actions'));
    body.appendChild(flagBlock(s));
    body.appendChild(ackBlock(s));
    body.appendChild(userChart(s));
  }

  function start() {
    AW.ev.store.on('selected', render);
    // Flags and acknowledgements change the selected session: draw it again, keeping focus.
    AW.ev.store.on('data', function () {
      var s = AW.ev.store.state.selected;
      if (!s || s.key !== shownKey) return;
      var focusedId = document.activeElement && document.activeElement.id;
      var signature = String(s.user_flagged) + JSON.stringify(s.acknowledged);
      if (signature === render.signature) return;
      render.signature = signature;
      render(s);
      if (focusedId && $(focusedId)) $(focusedId).focus();
    });
    AW.ev.store.on('selected', function (s) {
      render.signature = s ? String(s.user_flagged) + JSON.stringify(s.acknowledged) : null;
    });
  }

  AW.ev = AW.ev || {};
  AW.ev.detail = { start: start };
})(window.AnomalyWatch);
