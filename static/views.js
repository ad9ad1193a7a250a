/* The page's views (live streams, EV charging, alerts, history), switched by the address's #fragment, so a view
 * can be linked and the back button works. Every element with data-view="<name>" belongs to
 * a view; widgets learn that their view became visible through AnomalyWatch.views.on('shown').
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var VIEWS = ['streams', 'ev', 'alerts', 'history'];
  var bus = AW.emitter();
  var current = null;

  function fromHash() {
    var name = window.location.hash.replace(/^#/, '');
    return VIEWS.indexOf(name) >= 0 ? name : 'streams';
  }

  function show(name) {
    if (name === current) return;
    current = name;
    Array.prototype.forEach.call(document.querySelectorAll('[data-view]'), function (node) {
      node.hidden = node.dataset.view !== name;
    });
    VIEWS.forEach(function (view) {
      var link = dom.$('view-link-' + view);
      if (view === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    });
    // Styles that depend on the view (where the toasts sit) read this; not data-view, which marks
    // the elements each view shows.
    document.body.dataset.shownView = name;
    bus.emit('shown', name);
  }

  function start() {
    window.addEventListener('hashchange', function () { show(fromHash()); });
    show(fromHash());
  }

  AW.views = {
    on: bus.on,
    start: start,
    get current() { return current; }
  };
})(window.AnomalyWatch);
