/* The EV view's upload button: sends a CSV or JSON-lines file of sessions to POST /api/upload,
 * shows the bytes going up, then the server's summary (or its error, which names the line):
 * sessions stored, anomalies found, and sessions skipped as stored before, and reloads the table.
 * A file is imported whole or not at all: on an error nothing changed.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var $ = dom.$;

  function firstNumber(body, keys) {
    for (var i = 0; i < keys.length; i += 1) {
      var v = body ? body[keys[i]] : undefined;
      if (fmt.isNum(v)) return v;
      if (Array.isArray(v)) return v.length;
    }
    return null;
  }

  function summaryText(body, file) {
    var sessions = firstNumber(body, ['events', 'sessions', 'rows']);
    var anomalies = firstNumber(body, ['anomalies', 'anomaly_list']);
    var parts = [file.name + ':'];
    parts.push(sessions === null ? 'imported' : fmt.count(sessions) + (sessions === 1 ? ' session' : ' sessions'));
    if (anomalies !== null) parts.push('· ' + fmt.count(anomalies) + (anomalies === 1 ? ' anomaly' : ' anomalies') + ' found');
    // Sessions stored before (the same file again, a retry) are skipped: said only when there are any.
    var duplicates = firstNumber(body, ['duplicates']);
    if (duplicates) parts.push('· ' + fmt.count(duplicates) + ' already stored, skipped');
    return parts.join(' ');
  }

  function setStatus(text, fraction, isError) {
    var box = $('ev-upload-status');
    box.hidden = false;
    box.classList.toggle('is-error', Boolean(isError));
    var bar = $('ev-progress');
    if (fraction === null) bar.removeAttribute('value'); // indeterminate: the server is scoring
    else bar.value = fraction;
    bar.hidden = Boolean(isError);
    dom.setText($('ev-upload-message'), text);
  }

  function send(file) {
    var input = $('ev-file');
    input.disabled = true;
    input.parentNode.classList.add('is-busy');
    setStatus('Uploading ' + file.name + '…', 0, false);
    AW.ev.api.upload(file, function (fraction) {
      if (fraction < 1) setStatus('Uploading ' + file.name + '… ' + Math.round(fraction * 100) + '%', fraction, false);
      else setStatus('Scoring ' + file.name + '…', null, false);
    }).then(function (body) {
      setStatus(summaryText(body, file), 1, false);
      var found = AW.ev.api.uploaded(body);
      if (found.length) AW.ev.store.put(found);
      return AW.ev.store.refresh();
    }).catch(function (err) {
      setStatus(err.message, 0, true);
    }).then(function () {
      input.disabled = false;
      input.value = '';
      input.parentNode.classList.remove('is-busy');
    });
  }

  function start() {
    $('ev-file').addEventListener('change', function (evt) {
      var file = evt.target.files && evt.target.files[0];
      if (file) send(file);
    });
  }

  AW.ev = AW.ev || {};
  AW.ev.upload = { start: start, send: send };
})(window.AnomalyWatch);
