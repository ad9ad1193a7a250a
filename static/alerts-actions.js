/* What a person does to an alert from the alerts page: acknowledge or resolve it (who, a note),
 * or silence it (matchers prefilled from the alert's labels, a duration or an expiry). Two
 * dialogs in the page; the server's answer (or its 4xx message) is shown in the dialog.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var el = dom.el;
  var $ = dom.$;

  var WHO_KEY = 'anomalywatch.alerts.by';
  var MATCHER_LABELS = ['stream', 'entity', 'type', 'severity'];
  var VERBS = {
    acknowledge: { title: 'Acknowledge alert', button: 'Acknowledge', done: 'Acknowledged' },
    resolve: { title: 'Resolve alert by hand', button: 'Resolve', done: 'Resolved' }
  };

  var pending = null; // {action, alert} of the open dialog

  function describe(alert) {
    return (alert.entity ? alert.stream + ' / ' + alert.entity : alert.stream) + ' · ' + alert.type +
      ' · ' + (alert.severity || 'no severity') + ' · ' + AW.fmt.count(alert.points) + ' points';
  }

  function setMessage(id, text, isError) {
    var box = $(id);
    dom.setText(box, text || '');
    box.classList.toggle('is-error', Boolean(isError));
  }

  function who(input) {
    var name = input.value.trim();
    if (name) dom.store(WHO_KEY, name);
    return name;
  }

  // -------------------------------------------------------------- acknowledge / resolve

  function openAction(action, alert) {
    var verb = VERBS[action];
    pending = { action: action, alert: alert };
    dom.setText($('alert-action-title'), verb.title);
    dom.setText($('alert-action-subject'), describe(alert));
    dom.setText($('alert-action-submit'), verb.button);
    $('alert-action-by').value = dom.stored(WHO_KEY, '');
    $('alert-action-note').value = '';
    setMessage('alert-action-message', '');
    $('alert-action').showModal();
    ($('alert-action-by').value ? $('alert-action-note') : $('alert-action-by')).focus();
  }

  function submitAction(evt) {
    evt.preventDefault();
    if (!pending) return;
    var current = pending;
    var body = {};
    var name = who($('alert-action-by'));
    var note = $('alert-action-note').value.trim();
    if (name) body.by = name;
    if (note) body.note = note;
    var submit = $('alert-action-submit');
    submit.disabled = true;
    AW.api('/api/incidents/' + current.alert.id + '/' + current.action, { method: 'POST', body: body })
      .then(function (answer) {
        AW.alerts.store.update(answer.alert);
        $('alert-action').close();
        AW.alerts.table.showMessage(VERBS[current.action].done + ': ' + describe(answer.alert));
      }, function (err) {
        setMessage('alert-action-message', err.message, true);
      }).then(function () { submit.disabled = false; });
  }

  // -------------------------------------------------------------- silence

  function matcherRow(label, value, checked) {
    var id = 'alert-silence-' + label;
    var row = el('label', 'silence-matcher', null, { for: id });
    var box = el('input', null, null, { type: 'checkbox', id: id, name: label, value: value });
    box.checked = checked;
    row.appendChild(box);
    row.appendChild(el('span', 'silence-label', label));
    row.appendChild(el('span', 'mono silence-value', label === 'severity' ? '≥ ' + value : value));
    return row;
  }

  function openSilence(alert) {
    pending = { action: 'silence', alert: alert };
    var box = $('alert-silence-matchers');
    Array.prototype.slice.call(box.querySelectorAll('.silence-matcher')).forEach(function (node) {
      box.removeChild(node);
    });
    MATCHER_LABELS.forEach(function (label) {
      var value = alert[label];
      if (value) box.appendChild(matcherRow(label, value, label !== 'severity'));
    });
    $('alert-silence-duration').value = '3600';
    $('alert-silence-until-field').hidden = true;
    $('alert-silence-until').value = '';
    $('alert-silence-by').value = dom.stored(WHO_KEY, '');
    $('alert-silence-comment').value = '';
    setMessage('alert-silence-message', '');
    $('alert-silence').showModal();
  }

  function submitSilence(evt) {
    evt.preventDefault();
    var matchers = {};
    Array.prototype.forEach.call($('alert-silence-matchers').querySelectorAll('input:checked'), function (box) {
      matchers[box.name] = box.name === 'severity' ? '>=' + box.value : box.value;
    });
    if (!Object.keys(matchers).length) {
      setMessage('alert-silence-message', 'Check at least one label to match.', true);
      return;
    }
    var body = { matchers: matchers };
    var duration = $('alert-silence-duration').value;
    if (duration === 'until') {
      var until = $('alert-silence-until').value;
      if (!until) {
        setMessage('alert-silence-message', 'Pick when the silence expires.', true);
        return;
      }
      body.ends_at = new Date(until).getTime() / 1000; // a local date-time, as epoch seconds
    } else {
      body.duration = Number(duration);
    }
    var name = who($('alert-silence-by'));
    var comment = $('alert-silence-comment').value.trim();
    if (name) body.by = name;
    if (comment) body.comment = comment;
    AW.api('/api/silences', { method: 'POST', body: body }).then(function (answer) {
      $('alert-silence').close();
      AW.alerts.table.showMessage('Silence ' + answer.silence.id + ' until ' +
        AW.fmt.dateTime(answer.silence.ends_at) + '.');
      AW.alerts.store.reload();
    }, function (err) {
      setMessage('alert-silence-message', err.message, true);
    });
  }

  function open(action, alertId) {
    var alert = AW.alerts.store.get(alertId);
    if (!alert) return;
    if (action === 'silence') openSilence(alert);
    else openAction(action, alert);
  }

  function start() {
    $('alert-action-form').addEventListener('submit', submitAction);
    $('alert-action-cancel').addEventListener('click', function () { $('alert-action').close(); });
    $('alert-silence-form').addEventListener('submit', submitSilence);
    $('alert-silence-cancel').addEventListener('click', function () { $('alert-silence').close(); });
    $('alert-silence-duration').addEventListener('change', function (evt) {
      $('alert-silence-until-field').hidden = evt.target.value !== 'until';
    });
  }

  AW.alerts = AW.alerts || {};
  AW.alerts.actions = { start: start, open: open };
})(window.AnomalyWatch);
