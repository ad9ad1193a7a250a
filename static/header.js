/* The top bar: the clock, the sound switch and the firing alerts' badge (the connection badge
 * belongs to live.js). */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var $ = dom.$;

  var DATE_FORMAT = new Intl.DateTimeFormat(undefined,
    { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });

  function tickClock() {
    var now = new Date();
    dom.setText($('clock-time'), AW.fmt.clock(now.getTime()));
    dom.setText($('clock-date'), DATE_FORMAT.format(now));
    $('clock-time').setAttribute('datetime', now.toISOString());
  }

  function initSoundSwitch() {
    var button = $('sound-switch');
    function render(muted) {
      button.setAttribute('aria-checked', muted ? 'false' : 'true');
      button.title = muted ? 'Sound alerts are off' : 'Sound alerts are on';
    }
    if (!window.AlertSound) { button.hidden = true; return; }
    render(window.AlertSound.isMuted());
    window.AlertSound.onChange(render);
    button.addEventListener('click', function () {
      window.AlertSound.setMuted(!window.AlertSound.isMuted());
    });
  }

  /** The count of firing alerts, a link to the alerts page; hidden while none fires. */
  function initAlertsBadge() {
    AW.alerts.store.on('counts', function (counts) {
      var badge = $('alerts-badge');
      dom.setText($('alerts-badge-count'), AW.fmt.count(counts.firing));
      badge.hidden = !counts.firing;
      badge.setAttribute('aria-label', counts.firing + ' firing alert' + (counts.firing === 1 ? '' : 's') +
        (counts.pending ? ', ' + counts.pending + ' pending' : ''));
    });
  }

  function start() {
    tickClock();
    window.setInterval(tickClock, 1000);
    initSoundSwitch();
    initAlertsBadge();
  }

  AW.header = { start: start };
})(window.AnomalyWatch);
