/* The summary cards: server state, points, anomalies, rate, precision and recall.
 * Polls GET /api/stats and /health; the server card also takes each /api/status answer.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var $ = dom.$;
  var isNum = fmt.isNum;

  var STATS_EVERY_MS = 3000;

  var server = { status: null, uptime: null, health: null, tickInterval: null };

  function renderStat(id, value, sub) {
    var card = $(id);
    dom.setText(card.querySelector('[data-role="value"]'), value);
    if (sub !== undefined) dom.setText(card.querySelector('[data-role="sub"]'), sub);
  }

  function renderServerCard() {
    var word;
    var tone;
    if (server.health === 'unreachable') {
      word = 'Offline'; tone = 'bad';
    } else if (server.health === 'degraded' || server.status === 'degraded') {
      word = 'Degraded'; tone = 'warn';
    } else if (server.health === 'ok' || server.status === 'ok') {
      word = 'Online'; tone = 'ok';
    } else {
      word = '—'; tone = 'unknown';
    }
    var sub = server.health === 'unreachable' ? 'No answer from the server'
      : 'up ' + fmt.duration(server.uptime) + (server.tickInterval ? ' · tick ' + server.tickInterval + ' s' : '');
    renderStat('stat-server', word, sub);
    var card = $('stat-server');
    if (card.dataset.tone !== tone) card.dataset.tone = tone;
  }

  function onStatus(body) {
    server.status = body.status;
    server.uptime = body.uptime_s;
    if (isNum(body.tick_interval_s)) server.tickInterval = body.tick_interval_s;
    renderServerCard();
  }

  function topDetectorText(perDetector) {
    if (!perDetector) return ' ';
    var best = null;
    Object.keys(perDetector).forEach(function (name) {
      if (perDetector[name] > 0 && (!best || perDetector[name] > perDetector[best])) best = name;
    });
    return best ? 'most fired: ' + best : ' ';
  }

  function poll() {
    AW.api('/api/stats').then(function (s) {
      renderStat('stat-points', fmt.count(s.points), s.tick && isNum(s.tick.p99_ms)
        ? 'tick p99 ' + s.tick.p99_ms.toFixed(1) + ' ms' : ' ');
      renderStat('stat-anomalies', fmt.count(s.anomalies), topDetectorText(s.per_detector));
      renderStat('stat-rate', fmt.percent(s.anomaly_rate, 2));
      var t = s.truth || {};
      renderStat('stat-precision', fmt.percent(t.precision), isNum(t.tp)
        ? 'TP ' + fmt.count(t.tp) + ' · FP ' + fmt.count(t.fp) : 'flags that were injected');
      renderStat('stat-recall', fmt.percent(t.recall), isNum(t.episodes_caught)
        ? fmt.count(t.episodes_caught) + ' caught · ' + fmt.count(t.episodes_missed) + ' missed'
        : 'injected anomalies flagged');
    }).catch(function () { /* the server card says why */ });

    fetch('/health', { cache: 'no-store' }).then(function (res) {
      return res.json().then(function (body) {
        AW.live.setSchedulerOff(body.scheduler_enabled === false);
        server.health = body.status || (res.ok ? 'ok' : 'degraded');
        renderServerCard();
      });
    }).catch(function () {
      server.health = 'unreachable';
      renderServerCard();
    });
  }

  function start() {
    AW.streams.on('status', onStatus);
    poll();
    window.setInterval(poll, STATS_EVERY_MS);
  }

  AW.stats = { start: start };
})(window.AnomalyWatch);
