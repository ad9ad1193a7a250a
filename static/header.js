/* The top bar: the clock and the sound switch (the connection badge belongs to live.js). */
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

  function start() {
    tickClock();
    window.setInterval(tickClock, 1000);
    initSoundSwitch();
  }

  AW.header = { start: start };
})(window.AnomalyWatch);
