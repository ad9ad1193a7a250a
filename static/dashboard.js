/* The live dashboard page: starts the widgets (one file each, loaded before this one) and
 * exposes window.dashboard for the browser tests and the console.
 *
 * Start-up: GET /api/status lists the streams, then the one live connection opens (SSE,
 * live.js), then the charts on screen fetch their stored windows and the recent alerts are
 * loaded. Listening before fetching means points in between arrive twice; they are
 * de-duplicated by id.
 */
(function (AW) {
  'use strict';

  function start() {
    if (typeof window.Chart !== 'function') {
      AW.dom.setText(AW.dom.$('charts-empty'), 'Chart.js did not load (is /vendor/chart.umd.js served?).');
      return;
    }
    // Subscribers first, so nothing the first answers carry is missed.
    AW.header.start();
    AW.charts.start();
    AW.streamList.start();
    AW.anomalies.start();
    AW.detail.start();
    AW.tuning.start();
    AW.submit.start();
    AW.stats.start();
    AW.streams.start();
    AW.ev.store.start();
    AW.ev.upload.start();
    AW.ev.summary.start();
    AW.ev.table.start();
    AW.ev.detail.start();
    AW.alerts.table.start();
    AW.alerts.actions.start();
    AW.alerts.silences.start();
    AW.history.chart.start();
    AW.views.start();

    AW.streams.loadStatus().catch(function () {
      AW.dom.setText(AW.dom.$('charts-empty'), 'The server cannot be reached. Retrying…');
    }).then(function () {
      AW.live.start();
      AW.alerts.store.start();
      AW.streams.loadWindows();
      AW.anomalies.loadRecent();
    });
  }

  window.dashboard = {
    charts: AW.charts.byName,
    streams: AW.streams.all,
    anomalies: AW.anomalies.all,
    alerted: AW.anomalies.alerted,
    openDetail: function (point) { AW.detail.open(point, null); },
    reconnect: function () { AW.live.reconnect(); },
    alerts: AW.alerts.store,
    history: AW.history,
    get connection() { return AW.live.state; },
    get lastEventId() { return AW.live.lastEventId; }
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(window.AnomalyWatch);
