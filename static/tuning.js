/* The tuning panel: pick a stream, change the ensemble threshold and each detector's threshold,
 * window, weight and on/off through POST /api/configure. The server owns validation: what the
 * user typed is sent as is, its message is shown next to the row, and the row goes back to
 * what the server runs. Live scores of the chosen stream are shown beside each threshold.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;
  var setText = dom.setText;
  var isNum = fmt.isNum;

  var tuning = { stream: null, rows: new Map() };

  /** A server value as the input shows it: six significant digits, so a threshold derived from a
   * false-alarm rate (0.6837722339831621) reads 0.683772; an unchanged input is never sent back. */
  function shown(value) {
    if (value === null || value === undefined) return '';
    return isNum(value) ? String(Number(value.toPrecision(6))) : String(value);
  }

  function setInput(input, value) {
    var text = shown(value);
    if (input.value !== text) input.value = text;
    input.dataset.server = text;
  }

  /** Sends what the user typed even when it is not a number: the server owns validation. */
  function parseNumberInput(text) {
    var trimmed = text.trim();
    if (trimmed === '') return null;
    var n = Number(trimmed);
    return isFinite(n) ? n : trimmed;
  }

  /** Shows a message next to the form it is about (or under the panel), clearing older ones. */
  function setMessage(text, isError, form) {
    var target = form ? form.querySelector('.form-message') : $('tune-message');
    Array.prototype.forEach.call($('tuning-panel').querySelectorAll('.form-message'), function (msg) {
      if (msg !== target && msg.textContent) { setText(msg, ''); msg.classList.remove('is-error'); }
    });
    setText(target, text);
    target.classList.toggle('is-error', Boolean(isError));
  }

  function addStreamOption(stream) {
    $('tune-stream').appendChild(el('option', null, stream.name, { value: stream.name }));
    if (!tuning.stream) select(stream.name);
  }

  function select(name) {
    tuning.stream = name;
    var chooser = $('tune-stream');
    if (chooser.value !== name) chooser.value = name;
    dom.clear($('tune-detectors'));
    tuning.rows.clear();
    setMessage('', false);
    $('tune-ensemble').elements.threshold.value = '';
    AW.configs.load(name, true).then(function (cfg) {
      if (tuning.stream !== name || !cfg) return;
      render(cfg);
    }).catch(function (err) {
      if (tuning.stream === name) setMessage(err.message, true);
    });
  }

  function render(cfg) {
    setInput($('tune-ensemble').elements.threshold, cfg.threshold);
    var list = $('tune-detectors');
    Object.keys(cfg.detectors || {}).forEach(function (name) {
      var row = tuning.rows.get(name);
      if (!row) {
        row = buildDetectorRow(name);
        tuning.rows.set(name, row);
        list.appendChild(row.form);
      }
      var d = cfg.detectors[name];
      setInput(row.inputs.threshold, d.threshold);
      setInput(row.inputs.window, d.window);
      // Some detectors (e.g. pattern) have no window: say so instead of offering an empty box.
      var hasWindow = d.window !== null && d.window !== undefined;
      row.inputs.window.disabled = !hasWindow;
      row.inputs.window.placeholder = hasWindow ? '' : 'n/a';
      setInput(row.inputs.weight, d.weight);
      row.inputs.enabled.checked = Boolean(d.enabled);
      row.form.classList.toggle('is-disabled', !d.enabled);
      row.threshold = d.threshold;
    });
    var stream = AW.streams.get(tuning.stream);
    if (stream && stream.latest) renderLiveScores(stream.latest);
  }

  function buildDetectorRow(name) {
    var form = el('form', 'detector-row', null, { novalidate: '' });
    form.dataset.detector = name;
    var head = el('div', 'detector-head');
    head.appendChild(el('span', 'detector-name', name));
    var liveScore = el('span', 'live-score', '—', { title: 'Latest score of ' + name });
    head.appendChild(liveScore);
    var toggle = el('label', 'toggle');
    var enabled = el('input', null, null, { type: 'checkbox', name: 'enabled' });
    toggle.appendChild(enabled);
    toggle.appendChild(el('span', null, 'on'));
    head.appendChild(toggle);
    form.appendChild(head);

    var fields = el('div', 'detector-fields');
    function numberField(label, fieldName, step) {
      var wrap = el('label', 'field field-compact');
      wrap.appendChild(el('span', 'field-label', label));
      var input = el('input', null, null, { type: 'number', name: fieldName, step: step, inputmode: 'decimal' });
      input.setAttribute('aria-label', name + ' ' + label.toLowerCase());
      wrap.appendChild(input);
      fields.appendChild(wrap);
      return input;
    }
    var inputs = {
      threshold: numberField('Threshold', 'threshold', 'any'),
      window: numberField('Window', 'window', '1'),
      weight: numberField('Weight', 'weight', 'any'),
      enabled: enabled
    };
    enabled.setAttribute('aria-label', name + ' enabled');
    var apply = el('button', 'btn btn-small', 'Apply', { type: 'submit' });
    apply.setAttribute('aria-label', 'Apply ' + name + ' settings');
    fields.appendChild(apply);
    form.appendChild(fields);
    form.appendChild(el('p', 'form-message', null, { role: 'status', 'aria-live': 'polite' }));

    form.addEventListener('submit', function (evt) {
      evt.preventDefault();
      var changes = {};
      ['threshold', 'window', 'weight'].forEach(function (key) {
        var input = inputs[key];
        if (input.value !== input.dataset.server) changes[key] = parseNumberInput(input.value);
      });
      if (!Object.keys(changes).length) {
        setMessage('Nothing changed for ' + name + '.', false, form);
        return;
      }
      send(name, changes, form);
    });
    enabled.addEventListener('change', function () {
      send(name, { enabled: enabled.checked }, form);
    });
    return { name: name, form: form, inputs: inputs, liveScore: liveScore, threshold: null };
  }

  function send(detector, changes, form) {
    var stream = tuning.stream;
    form.classList.add('is-busy');
    AW.configs.change(stream, detector, changes).then(function (cfg) {
      if (tuning.stream === stream && cfg) render(cfg);
      var what = Object.keys(changes).map(function (k) { return k + ' ' + String(changes[k]); }).join(', ');
      setMessage('Saved ' + detector + ' on ' + stream + ': ' + what + '.', false, form);
      dom.flash(form);
    }).catch(function (err) {
      setMessage(err.message, true, form);
      // Put the controls back to what the server actually runs.
      if (tuning.stream === stream) {
        AW.configs.load(stream, true).then(render).catch(function () { /* keep the message */ });
      }
    }).then(function () {
      form.classList.remove('is-busy');
    });
  }

  function renderLiveScores(point) {
    if (!point) return;
    var live = $('tune-ensemble').querySelector('[data-role="live"]');
    setText(live, fmt.score(point.score));
    var cfg = AW.configs.get(tuning.stream);
    live.classList.toggle('is-over', Boolean(cfg && isNum(point.score) && point.score >= cfg.threshold));
    tuning.rows.forEach(function (row, name) {
      var score = point.detectors ? point.detectors[name] : undefined;
      setText(row.liveScore, fmt.score(score));
      row.liveScore.classList.toggle('is-over', isNum(score) && isNum(row.threshold) && score >= row.threshold);
    });
  }

  function start() {
    $('tune-stream').addEventListener('change', function (evt) { select(evt.target.value); });
    $('tune-ensemble').addEventListener('submit', function (evt) {
      evt.preventDefault();
      if (!tuning.stream) return;
      var input = evt.target.elements.threshold;
      if (input.value === input.dataset.server) {
        setMessage('Nothing changed for the ensemble.', false, evt.target);
        return;
      }
      send('ensemble', { threshold: parseNumberInput(input.value) }, evt.target);
    });
    AW.streams.on('added', addStreamOption);
    AW.streams.on('points', function (stream, points) {
      if (stream.name === tuning.stream) renderLiveScores(points[points.length - 1]);
    });
  }

  AW.tuning = { select: select, start: start };
})(window.AnomalyWatch);
