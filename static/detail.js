/* The detail dialog of one point: score, severity, values against their expected ranges, each
 * detector's score and threshold, and the explanation. Opened from a history row, a toast, a
 * chart marker or the submit verdict; focus goes back to the opener when it closes.
 * "History around this point" opens the history view on the point's stream around its time.
 * An anomaly has a "Not an anomaly" button: the stream is taught that these values are normal
 * (POST /api/anomalies/<anomaly_id>/feedback), and a toast says what happened.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;
  var setText = dom.setText;
  var isNum = fmt.isNum;
  var severityOf = AW.points.severityOf;

  var opener = null;
  /** Anomaly ids marked "not an anomaly" from this page, so a reopened dialog says so. */
  var marked = Object.create(null);

  function streamInfo(name) {
    var stream = AW.streams.get(name);
    return stream ? stream.info : null;
  }

  function summaryItem(label, value) {
    var wrap = el('div', 'summary-item');
    wrap.appendChild(el('dt', null, label));
    wrap.appendChild(el('dd', null, value));
    return wrap;
  }

  function tableHead(labels) {
    var thead = el('thead');
    var tr = el('tr');
    labels.forEach(function (label) { tr.appendChild(el('th', null, label, { scope: 'col' })); });
    thead.appendChild(tr);
    return thead;
  }

  function fillThresholds(source, cells) {
    AW.configs.load(source).then(function (cfg) {
      var detectors = (cfg && cfg.detectors) || {};
      Object.keys(cells).forEach(function (name) {
        var d = detectors[name];
        setText(cells[name], d && isNum(d.threshold) ? fmt.score(d.threshold) : '—');
      });
    }).catch(function () {
      Object.keys(cells).forEach(function (name) { setText(cells[name], '—'); });
    });
  }

  function valuesTable(a) {
    var table = el('table', 'detail-table');
    table.appendChild(tableHead(['Field', 'Value', 'Expected range', '']));
    var tbody = el('tbody');
    var info = streamInfo(a.source);
    Object.keys(a.values || {}).forEach(function (field) {
      var v = a.values[field];
      var range = a.expected ? a.expected[field] : null;
      var hasRange = Array.isArray(range) && isNum(range[0]) && isNum(range[1]);
      var outside = hasRange && isNum(v) && (v < range[0] || v > range[1]);
      var unit = AW.points.unitFor(info, field);
      var tr = el('tr');
      tr.appendChild(el('th', null, field, { scope: 'row' }));
      tr.appendChild(el('td', 'num', fmt.value(v) + (unit ? ' ' + unit : '')));
      tr.appendChild(el('td', 'num', hasRange ? fmt.value(range[0]) + ' – ' + fmt.value(range[1]) : 'not yet known'));
      tr.appendChild(el('td', outside ? 'flag flag-out' : 'flag',
        hasRange ? (outside ? (v < range[0] ? 'below' : 'above') : 'within') : ''));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    return table;
  }

  function detectorsTable(a) {
    var table = el('table', 'detail-table');
    table.appendChild(tableHead(['Detector', 'Score', 'Threshold', 'Fired']));
    var tbody = el('tbody');
    var fired = a.fired || [];
    var thresholdCells = {};
    Object.keys(a.detectors || {}).forEach(function (name) {
      var score = a.detectors[name];
      var isFired = fired.indexOf(name) >= 0;
      var tr = el('tr', isFired ? 'is-fired' : '');
      tr.appendChild(el('th', null, name, { scope: 'row' }));
      var scoreCell = el('td', 'score-cell');
      var bar = el('span', 'score-bar', null, { 'aria-hidden': 'true' });
      var fill = el('span', 'score-fill');
      fill.style.width = (isNum(score) ? Math.max(0, Math.min(1, score)) * 100 : 0) + '%';
      bar.appendChild(fill);
      scoreCell.appendChild(bar);
      scoreCell.appendChild(el('span', 'num', fmt.score(score)));
      tr.appendChild(scoreCell);
      var th = el('td', 'num muted', '…');
      thresholdCells[name] = th;
      tr.appendChild(th);
      tr.appendChild(el('td', isFired ? 'flag flag-out' : 'flag', isFired ? 'yes' : 'no'));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    fillThresholds(a.source, thresholdCells);
    return table;
  }

  function feedbackBlock(a) {
    var box = el('div', 'detail-feedback');
    var note = el('input', null, null, { type: 'text', name: 'note', autocomplete: 'off', maxlength: '1000',
      placeholder: 'Why (optional)', 'aria-label': 'Why it is not an anomaly' });
    var button = el('button', 'btn btn-small', 'Not an anomaly', { type: 'button', id: 'detail-not-anomaly' });
    var msg = el('p', 'form-message', null, { role: 'status', 'aria-live': 'polite' });
    box.appendChild(el('p', 'detail-feedback-hint', 'If this is normal for ' + a.source + ', say so: the stream learns ' +
      'these values, and the same pattern stops alerting on it.'));
    box.appendChild(note);
    box.appendChild(button);
    box.appendChild(msg);
    function done() {
      button.disabled = true;
      note.disabled = true;
      setText(button, 'Marked as not an anomaly');
    }
    if (marked[a.anomaly_id]) done();
    button.addEventListener('click', function () {
      button.disabled = true;
      setText(msg, '');
      msg.classList.remove('is-error');
      var body = { verdict: 'not_anomaly' };
      if (note.value.trim()) body.note = note.value.trim();
      AW.api('/api/anomalies/' + a.anomaly_id + '/feedback', { method: 'POST', body: body }).then(function (answer) {
        marked[a.anomaly_id] = true;
        done();
        var alert = answer && answer.alert;
        var resolved = alert && alert.resolution === 'not an anomaly';
        var told = a.source + ' learned these values' + (resolved ? '; its alert #' + alert.id + ' is resolved.' : '.');
        // Said in the dialog too: a modal dialog sits above the toasts while it is open.
        setText(msg, told);
        AW.anomalies.notice('Not an anomaly', told);
      }).catch(function (err) {
        setText(msg, err.message);
        msg.classList.add('is-error');
        button.disabled = false;
      });
    });
    return box;
  }

  /** The point's stream around its time, in the history view (the dialog closes first). */
  function historyButton(a) {
    var button = el('button', 'btn btn-small btn-ghost detail-history', 'History around this point',
      { type: 'button', id: 'detail-history', title: 'The stored points of ' + a.source + ' around this time' });
    button.addEventListener('click', function () {
      $('detail').close();
      AW.history.chart.openAround(a.source, a.timestamp, a.timestamp);
    });
    return button;
  }

  function open(a, from) {
    var dialog = $('detail');
    opener = from || document.activeElement;
    var sev = a.is_anomaly ? severityOf(a) : null;
    setText($('detail-title'), (a.is_anomaly ? 'Anomaly on ' : 'Point on ') + a.source);
    setText($('detail-subtitle'), fmt.dateTime(a.timestamp) + (isNum(a.id) ? ' · point #' + a.id : '') +
      (isNum(a.anomaly_id) ? ' · anomaly #' + a.anomaly_id : ''));

    var body = $('detail-body');
    dom.clear(body);

    var summary = el('dl', 'detail-summary');
    summary.appendChild(summaryItem('Score', fmt.score(a.score)));
    var sevItem = summaryItem('Severity', '');
    sevItem.querySelector('dd').appendChild(sev ? el('span', 'sev sev-' + sev, sev) : el('span', 'muted', 'not an anomaly'));
    summary.appendChild(sevItem);
    summary.appendChild(summaryItem('Detectors fired', String((a.fired || []).length)));
    // Only built-in streams know what was injected; submitted points have no ground truth.
    var truthText = a.truth ? (a.truth.is_anomaly ? 'injected' + (a.truth.kind ? ' (' + a.truth.kind + ')' : '')
      : 'not injected') : 'n/a';
    summary.appendChild(summaryItem('Ground truth', truthText));
    body.appendChild(summary);

    if (AW.streams.get(a.source)) body.appendChild(historyButton(a));
    if (a.warming_up) body.appendChild(el('p', 'detail-note', 'Detectors were still warming up on this stream.'));
    if (a.is_anomaly && a.alert === false) {
      body.appendChild(el('p', 'detail-note detail-episode',
        'This point continues an anomalous episode; the alert was raised on the episode\u2019s first point.'));
    }

    body.appendChild(el('h3', 'detail-section', 'Values'));
    body.appendChild(valuesTable(a));
    body.appendChild(el('h3', 'detail-section', 'Detectors'));
    body.appendChild(detectorsTable(a));
    body.appendChild(el('p', 'detail-explain', AW.points.explain(a)));
    if (a.is_anomaly && isNum(a.anomaly_id)) body.appendChild(feedbackBlock(a));

    if (!dialog.open) {
      if (typeof dialog.showModal === 'function') dialog.showModal();
      else dialog.setAttribute('open', '');
    }
  }

  /** Opens a point known to the page by its id (a chart marker). */
  function openById(source, pointId, from) {
    var found = AW.anomalies.get('p' + pointId);
    if (!found) {
      var stream = AW.streams.get(source);
      found = stream ? stream.points.filter(function (p) { return p.id === pointId; })[0] : null;
    }
    if (found) open(found, from);
  }

  function start() {
    var dialog = $('detail');
    dialog.addEventListener('close', function () {
      // Focus goes back where it was, so keyboard users keep their place.
      var target = opener;
      opener = null;
      if (target && target.isConnected && typeof target.focus === 'function') target.focus();
    });
    dialog.addEventListener('click', function (evt) {
      if (evt.target === dialog) dialog.close(); // a click on the backdrop
    });
  }

  AW.detail = { open: open, openById: openById, start: start };
})(window.AnomalyWatch);
