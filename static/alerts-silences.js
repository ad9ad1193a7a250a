/* The alerts page's list of silences in force or to come: what each matches, who set it, when
 * it expires; Expire ends one now (DELETE /api/silences/<id>).
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var el = dom.el;
  var $ = dom.$;

  function matcherText(matchers) {
    return Object.keys(matchers).map(function (label) {
      var value = matchers[label];
      return label + '=' + (Array.isArray(value) ? value.join('|') : value);
    }).join(', ');
  }

  function expire(silence, button) {
    button.disabled = true;
    AW.api('/api/silences/' + silence.id, { method: 'DELETE' }).then(function () {
      AW.alerts.table.showMessage('Silence ' + silence.id + ' expired.');
      return AW.alerts.store.reload();
    }, function (err) {
      button.disabled = false;
      AW.alerts.table.showMessage(err.message, true);
    });
  }

  function item(silence) {
    var li = el('li', 'silence-row', null, { 'data-silence-id': String(silence.id), 'data-state': silence.state });
    var text = el('div', 'silence-text');
    text.appendChild(el('span', 'mono silence-matchers-text', matcherText(silence.matchers)));
    var until = (silence.state === 'pending' ? 'from ' + AW.fmt.dateTime(silence.starts_at) + ' ' : '') +
      'until ' + AW.fmt.dateTime(silence.ends_at);
    text.appendChild(el('span', 'silence-meta', until + (silence.created_by ? ' · by ' + silence.created_by : '') +
      (silence.comment ? ' · ' + silence.comment : '')));
    li.appendChild(text);
    var button = el('button', 'btn btn-small btn-ghost', 'Expire', { type: 'button', 'data-action': 'expire' });
    button.addEventListener('click', function () { expire(silence, button); });
    li.appendChild(button);
    return li;
  }

  function render() {
    var list = $('silences-list');
    var silences = AW.alerts.store.silences;
    dom.clear(list);
    silences.forEach(function (silence) { list.appendChild(item(silence)); });
    $('silences-empty').hidden = silences.length > 0;
  }

  function start() {
    var shown = '';
    AW.alerts.store.on('change', function () {
      // Rebuilt only when the silences themselves changed (alert events come far more often).
      var key = JSON.stringify(AW.alerts.store.silences);
      if (key !== shown) {
        shown = key;
        render();
      }
    });
  }

  AW.alerts = AW.alerts || {};
  AW.alerts.silences = { start: start };
})(window.AnomalyWatch);
