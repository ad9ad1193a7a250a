/* Detector configurations per stream, as the server last answered them (GET/POST /api/configure).
 * Shared by the tuning panel and the detail dialog (which shows each detector's threshold).
 */
(function (AW) {
  'use strict';

  var configs = new Map(); // stream -> engine config

  /** GET ?source= may answer {source, config} or {streams: {name: config}}; accept both. */
  function pick(body, source) {
    if (!body) return null;
    if (body.config) return body.config;
    if (body.streams && body.streams[source]) return body.streams[source];
    if (body.detectors) return body;
    return null;
  }

  /** A stream's configuration, from the cache unless force is set. */
  function load(source, force) {
    if (!force && configs.has(source)) return Promise.resolve(configs.get(source));
    return AW.api('/api/configure?source=' + encodeURIComponent(source)).then(function (body) {
      var cfg = pick(body, source);
      configs.set(source, cfg);
      return cfg;
    });
  }

  /** Sends one change; resolves with the stream's new configuration. */
  function change(source, detector, changes) {
    var payload = Object.assign({ source: source, detector: detector }, changes);
    return AW.api('/api/configure', { method: 'POST', body: payload }).then(function (body) {
      var cfg = pick(body, source);
      if (cfg) configs.set(source, cfg);
      return cfg;
    });
  }

  AW.configs = {
    all: configs,
    get: function (source) { return configs.get(source); },
    load: load,
    change: change
  };
})(window.AnomalyWatch);
