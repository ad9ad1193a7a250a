/* The "Live streams" section: which streams get a chart card, and in what order. */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var $ = dom.$;

  function onAdded(stream) {
    var empty = $('charts-empty');
    if (empty) empty.remove();
    $('charts').appendChild(AW.charts.cardFor(stream));
    var n = AW.streams.all.size;
    dom.setText($('stream-count'), n + (n === 1 ? ' stream' : ' streams'));
  }

  function start() {
    AW.streams.on('added', onAdded);
  }

  AW.streamList = { start: start };
})(window.AnomalyWatch);
