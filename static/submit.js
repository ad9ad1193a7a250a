/* The "Submit a point" form: POST /api/submit with one point, then the verdict under the form.
 * A new stream name creates a user stream; its chart appears like any other.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;
  var setText = dom.setText;
  var severityOf = AW.points.severityOf;

  /** "42" -> {value: 42}; "a=1, b=2" -> {values: {a: 1, b: 2}}; a JSON object is accepted as values. */
  function parseValues(text) {
    var trimmed = text.trim();
    if (!trimmed) throw new Error('Enter a value, or field=value pairs.');
    if (trimmed.charAt(0) === '{') {
      var obj;
      try { obj = JSON.parse(trimmed); } catch (err) { throw new Error('That JSON object does not parse.'); }
      return { values: obj };
    }
    if (!/[=:]/.test(trimmed)) {
      var n = Number(trimmed);
      if (!isFinite(n)) throw new Error('"' + trimmed + '" is not a number.');
      return { value: n };
    }
    var values = {};
    trimmed.split(/[,;\n]+/).forEach(function (pair) {
      if (!pair.trim()) return;
      var m = pair.match(/^\s*([^=:]+?)\s*[=:]\s*(.+?)\s*$/);
      if (!m) throw new Error('"' + pair.trim() + '" should look like field=value.');
      var v = Number(m[2]);
      values[m[1]] = isFinite(v) ? v : m[2];
    });
    return { values: values };
  }

  function readForm(form) {
    var source = form.elements.source.value.trim();
    if (!source) throw new Error('Choose a stream, or type a new name.');
    var payload = Object.assign({ source: source }, parseValues(form.elements.values.value));
    var ts = form.elements.timestamp.value;
    if (ts) {
      var ms = new Date(ts).getTime();
      if (!isFinite(ms)) throw new Error('That timestamp is not a date.');
      payload.timestamp = ms / 1000;
    }
    return payload;
  }

  function showError(text) {
    var msg = $('submit-message');
    setText(msg, text);
    msg.classList.add('is-error');
    $('submit-verdict').hidden = true;
  }

  function showVerdict(p) {
    var box = $('submit-verdict');
    dom.clear(box);
    box.hidden = false;
    box.className = 'verdict ' + (p.is_anomaly ? 'is-anomaly' : 'is-normal');
    var head = el('div', 'verdict-head');
    head.appendChild(el('span', 'verdict-flag', p.is_anomaly ? 'Anomaly' : 'Normal'));
    if (p.is_anomaly) head.appendChild(el('span', 'sev sev-' + severityOf(p), severityOf(p)));
    head.appendChild(el('span', 'verdict-score', 'score ' + fmt.score(p.score)));
    box.appendChild(head);
    box.appendChild(el('p', 'verdict-meta', p.source + ' · ' + AW.points.valuesText(p) + ' · ' + fmt.dateTime(p.timestamp)));
    box.appendChild(el('p', 'verdict-explain', AW.points.explain(p)));
    var more = el('button', 'btn btn-small btn-ghost', 'Details', { type: 'button' });
    more.addEventListener('click', function () { AW.detail.open(p, more); });
    box.appendChild(more);
  }

  function onSubmit(evt) {
    evt.preventDefault();
    var form = evt.target;
    var msg = $('submit-message');
    msg.classList.remove('is-error');
    var payload;
    try {
      payload = readForm(form);
    } catch (err) {
      showError(err.message);
      return;
    }
    var button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    setText(msg, 'Scoring…');
    AW.api('/api/submit', { method: 'POST', body: payload }).then(function (body) {
      var result = body && Array.isArray(body.results) ? body.results[0] : null;
      if (!result) throw new AW.ApiError('The server answered without a result.', 200);
      setText(msg, '');
      showVerdict(result);
      var known = AW.streams.get(result.source);
      var stream = AW.streams.ensure(result.source, Object.keys(result.values || {}));
      if (!known) AW.streams.refreshStatusSoon();
      AW.streams.addPoints(stream, [result]);
      if (result.is_anomaly) AW.anomalies.remember(result);
    }).catch(function (err) {
      showError(err.message);
    }).then(function () {
      button.disabled = false;
    });
  }

  function addStreamName(stream) {
    $('stream-names').appendChild(el('option', null, null, { value: stream.name }));
  }

  function start() {
    $('submit-form').addEventListener('submit', onSubmit);
    AW.streams.on('added', addStreamName);
  }

  AW.submit = { parseValues: parseValues, start: start };
})(window.AnomalyWatch);
