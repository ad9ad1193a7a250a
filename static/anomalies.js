/* Anomalies: the "Recent anomalies" list, pop-up toasts and the alert tone.
 *
 * A point is anomalous (is_anomaly) for as long as its stream's episode lasts; the episode's
 * first point carries alert: true. Every anomalous point is remembered (the detail dialog and
 * the chart markers show them all), but only an alert makes a history row, a toast and a tone:
 * one per incident. Servers that do not send `alert` make every anomalous point its own alert
 * (AnomalyWatch.points.isAlert). Later points of an episode add to its row's point count.
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
  var isAlert = AW.points.isAlert;

  var HISTORY_SIZE = 20;
  var TOAST_LIMIT = 4;
  var TOAST_MS = 7000;
  var MAX_REMEMBERED = 600;
  // Anomalies older than this when they reach the page (replay after a reconnect) go to
  // the history quietly instead of popping up and beeping all at once.
  var QUIET_AFTER_S = 30;
  // Anomalies of one tick arrive together: they share one toast and one tone, so a busy
  // tick does not bury the page under pop-ups.
  var ALERT_BATCH_MS = 250;
  var HISTORY_OPEN_KEY = 'anomalyWatch.historyOpen';

  var remembered = new Map();   // anomaly key -> anomaly object (bounded)
  var seenAlerts = new Set();
  var historyRows = [];         // [{key, sortKey, li, source, points, countNode}] newest first
  var episodes = new Map();     // source -> history row of its latest alert, while its episode lasts
  var pendingAlerts = [];
  var alertTimer = null;
  var alerted = [];             // keys of the latest alerts that popped up (newest last, bounded)

  function keyOf(a) {
    return isNum(a.id) ? 'p' + a.id : 'a' + a.anomaly_id;
  }

  function remember(a) {
    var key = keyOf(a);
    var known = remembered.get(key);
    // Keep the richest copy (an anomaly event carries anomaly_id and detected_at).
    remembered.set(key, known ? Object.assign({}, known, a) : a);
    if (remembered.size > MAX_REMEMBERED) remembered.delete(remembered.keys().next().value);
  }

  function lookup(key) { return remembered.get(key); }

  /** Points of a live tick or a submit answer: anomalous ones are remembered, episodes followed. */
  function notePoints(stream, points) {
    points.forEach(function (p) {
      if (p.is_anomaly) {
        remember(p);
        if (!isAlert(p)) countEpisodePoint(p);
      } else if (isNum(p.id)) {
        var row = episodes.get(p.source);
        if (row && isNum(row.lastId) && p.id > row.lastId) episodes.delete(p.source); // back to normal
      }
    });
  }

  /** A stored anomaly (live event, or the replayed list after a reconnect). */
  function handle(a, quiet) {
    if (!a || typeof a.source !== 'string') return;
    if (AW.ev && AW.ev.api && AW.ev.api.isEvRecord(a)) return; // the EV view shows sessions
    var key = keyOf(a);
    remember(a);
    var stream = AW.streams.get(a.source);
    if (!stream) {
      stream = AW.streams.ensure(a.source, Object.keys(a.values || {}));
      AW.streams.refreshStatusSoon();
    }
    AW.streams.markAnomaly(stream, a);
    if (!isAlert(a)) { countEpisodePoint(a); return; }
    if (seenAlerts.has(key)) return;
    seenAlerts.add(key);
    // A page left open for days must not grow without bound; replays only reach back a little.
    if (seenAlerts.size > 4 * MAX_REMEMBERED) seenAlerts.delete(seenAlerts.values().next().value);
    addHistoryRow(a);
    var when = isNum(a.detected_at) ? a.detected_at : a.timestamp;
    if (!quiet && !(isNum(when) && Date.now() / 1000 - when > QUIET_AFTER_S)) queueAlert(a);
  }

  function queueAlert(a) {
    alerted.push(keyOf(a));
    if (alerted.length > HISTORY_SIZE * 5) alerted.shift();
    pendingAlerts.push(a);
    if (alertTimer === null) alertTimer = window.setTimeout(flushAlerts, ALERT_BATCH_MS);
  }

  function flushAlerts() {
    alertTimer = null;
    var batch = pendingAlerts;
    pendingAlerts = [];
    if (!batch.length) return;
    batch.sort(function (x, y) {
      return (AW.SEVERITIES.indexOf(severityOf(y)) - AW.SEVERITIES.indexOf(severityOf(x))) ||
        ((y.score || 0) - (x.score || 0));
    });
    showToast(batch[0], batch.slice(1));
    if (window.AlertSound) window.AlertSound.play(severityOf(batch[0]));
  }

  function loadRecent() {
    return AW.api('/api/alerts').then(function (body) {
      var alerts = (body && body.alerts) || [];
      // Oldest first so the newest ends up on top of the list.
      alerts.slice().reverse().forEach(function (a) { handle(a, true); });
    }).catch(function () { /* shown again on the next resync */ });
  }

  // ---------------------------------------------------------------- history list

  function historySortKey(a) {
    return [isNum(a.timestamp) ? a.timestamp : 0, isNum(a.id) ? a.id : 0];
  }

  function newerThan(k1, k2) {
    return k1[0] > k2[0] || (k1[0] === k2[0] && k1[1] > k2[1]);
  }

  /** A later point of an open episode: its row counts it instead of adding a row of its own. */
  function countEpisodePoint(p) {
    var row = episodes.get(p.source);
    if (!row || !isNum(p.id) || row.ids.has(p.id) || (isNum(row.firstId) && p.id < row.firstId)) return;
    row.ids.add(p.id);
    row.lastId = Math.max(row.lastId, p.id);
    setText(row.countNode, row.ids.size + ' points');
    row.countNode.hidden = false;
  }

  function addHistoryRow(a) {
    var key = keyOf(a);
    var sortKey = historySortKey(a);
    var position = 0;
    while (position < historyRows.length && !newerThan(sortKey, historyRows[position].sortKey)) position += 1;
    if (position >= HISTORY_SIZE) return;

    var li = el('li', 'history-item');
    var button = el('button', 'history-row', null, { type: 'button' });
    var sev = severityOf(a);
    button.appendChild(el('span', 'sev sev-' + sev, sev));
    var main = el('span', 'history-main');
    main.appendChild(el('span', 'history-stream', a.source));
    main.appendChild(el('span', 'history-values', AW.points.valuesText(a)));
    button.appendChild(main);
    var meta = el('span', 'history-meta');
    meta.appendChild(el('time', 'history-time', fmt.clock(a.timestamp * 1000)));
    meta.appendChild(el('span', 'history-score', 'score ' + fmt.score(a.score)));
    var countNode = el('span', 'history-episode', '', { title: 'Anomalous points in this episode so far' });
    countNode.hidden = true;
    meta.appendChild(countNode);
    button.appendChild(meta);
    button.setAttribute('aria-label', sev + ' anomaly on ' + a.source + ' at ' + fmt.clock(a.timestamp * 1000) +
      ', open details');
    button.addEventListener('click', function () { AW.detail.open(remembered.get(key) || a, button); });
    li.appendChild(button);

    var list = $('history-list');
    var before = historyRows[position] ? historyRows[position].li : null;
    list.insertBefore(li, before);
    var row = { key: key, sortKey: sortKey, li: li, source: a.source, countNode: countNode,
      ids: new Set(isNum(a.id) ? [a.id] : []), firstId: a.id, lastId: isNum(a.id) ? a.id : -Infinity };
    historyRows.splice(position, 0, row);
    var open = episodes.get(a.source);
    if (!open || newerThan(sortKey, open.sortKey)) episodes.set(a.source, row); // the stream's latest episode
    while (historyRows.length > HISTORY_SIZE) {
      var gone = historyRows.pop();
      if (episodes.get(gone.source) === gone) episodes.delete(gone.source);
      gone.li.remove();
    }
    if (position === 0 && historyRows.length > 1) li.classList.add('is-new');
    $('history-empty').hidden = historyRows.length > 0;
    setText($('history-count'), historyRows.length);
  }

  function initHistoryToggle() {
    var button = $('history-toggle');
    var body = $('history-body');
    function render(open) {
      button.setAttribute('aria-expanded', open ? 'true' : 'false');
      body.hidden = !open;
    }
    render(dom.stored(HISTORY_OPEN_KEY, '1') !== '0');
    button.addEventListener('click', function () {
      var next = button.getAttribute('aria-expanded') !== 'true';
      render(next);
      dom.store(HISTORY_OPEN_KEY, next ? '1' : '0');
    });
  }

  // ---------------------------------------------------------------- toasts

  function showToast(a, others) {
    var sev = severityOf(a);
    var key = keyOf(a);
    var toast = el('div', 'toast sev-border-' + sev, null, { role: 'status' });
    var body = el('button', 'toast-body', null, { type: 'button' });
    var head = el('span', 'toast-head');
    head.appendChild(el('span', 'sev sev-' + sev, sev));
    head.appendChild(el('span', 'toast-title', 'Anomaly on ' + a.source));
    body.appendChild(head);
    body.appendChild(el('span', 'toast-text', AW.points.valuesText(a) + ' · score ' + fmt.score(a.score)));
    if (others && others.length) {
      var names = [];
      others.forEach(function (o) { if (names.indexOf(o.source) < 0) names.push(o.source); });
      body.appendChild(el('span', 'toast-more', '+' + others.length + ' more on ' + names.join(', ')));
    }
    toast.appendChild(body);
    var dismiss = mount(toast);
    body.addEventListener('click', function () {
      AW.detail.open(remembered.get(key) || a, null);
      dismiss();
    });
  }

  /** A toast that only tells (an action's outcome): a title and one line, no detail to open. */
  function notice(title, text) {
    var toast = el('div', 'toast toast-notice', null, { role: 'status' });
    var body = el('div', 'toast-body');
    body.appendChild(el('span', 'toast-title', title));
    body.appendChild(el('span', 'toast-text', text));
    toast.appendChild(body);
    mount(toast);
  }

  /** Puts a toast on top of the pile with its close button and timer; returns its dismiss function. */
  function mount(toast) {
    var close = el('button', 'toast-close', null, { type: 'button', 'aria-label': 'Dismiss notification' });
    close.appendChild(el('span', null, '×', { 'aria-hidden': 'true' }));
    close.addEventListener('click', dismiss);
    toast.appendChild(close);

    var box = $('toasts');
    box.insertBefore(toast, box.firstChild);
    while (box.children.length > TOAST_LIMIT) box.lastChild.remove();

    var timer = null;
    var remaining = TOAST_MS;
    var startedAt = Date.now();
    function arm() { startedAt = Date.now(); timer = window.setTimeout(dismiss, remaining); }
    // Hovering or focusing a toast pauses its timer so it can be read and clicked.
    function pause() { window.clearTimeout(timer); remaining = Math.max(1500, remaining - (Date.now() - startedAt)); }
    toast.addEventListener('mouseenter', pause);
    toast.addEventListener('mouseleave', arm);
    toast.addEventListener('focusin', pause);
    toast.addEventListener('focusout', arm);
    function dismiss() {
      window.clearTimeout(timer);
      if (!toast.isConnected || toast.classList.contains('is-leaving')) return;
      toast.classList.add('is-leaving');
      window.setTimeout(function () { toast.remove(); }, dom.prefersReducedMotion() ? 0 : 180);
    }
    arm();
    return dismiss;
  }

  function start() {
    initHistoryToggle();
    AW.streams.on('points', notePoints);
    AW.live.on('anomaly', function (a) { handle(a, false); });
    AW.live.on('resumed', loadRecent);
  }

  AW.anomalies = {
    all: remembered,
    alerted: alerted,
    keyOf: keyOf,
    get: lookup,
    remember: remember,
    notice: notice,
    handle: handle,
    loadRecent: loadRecent,
    start: start
  };
})(window.AnomalyWatch);
