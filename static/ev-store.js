/* The EV view's state: the anomalous sessions the page knows, the filters, the sort and the
 * selected session. The EV widgets draw from it and listen:
 *   AnomalyWatch.ev.store.on('data', fn)      sessions were added or changed
 *   AnomalyWatch.ev.store.on('filters', fn)   the tab, search, severity, sort or paging changed
 *   AnomalyWatch.ev.store.on('selected', fn)  fn(session or null)
 */
(function (AW) {
  'use strict';

  var isNum = AW.fmt.isNum;
  var TYPES = ['billing_fraud', 'dos_attack', 'multi_user_conflict'];
  var POLL_MS = 15000;
  var MAX_SESSIONS = 5000; // the newest are kept; the server keeps the rest

  var bus = AW.emitter();
  var sessions = new Map();  // key -> session
  var flaggedUsers = new Set();
  var state = {
    type: 'all', query: '', severity: '', hideAcked: false,
    sort: { key: 'risk', desc: true },
    selected: null, summary: null, loading: null, error: null
  };

  function applyFlag(s) {
    s.user_flagged = flaggedUsers.has(s.user_id);
    return s;
  }

  function put(list) {
    list.forEach(function (s) { sessions.set(s.key, applyFlag(s)); });
    while (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
    if (state.selected && sessions.has(state.selected.key)) state.selected = sessions.get(state.selected.key);
    bus.emit('data');
  }

  var again = false;  // a refresh was asked for while one was loading: its answers may predate the ask

  /** Reloads the anomalies, the summary and the flagged users; a part that fails keeps its last state.
   * Asked while a reload is in flight, it reloads once more after it, so what changed since counts. */
  function refresh() {
    if (state.loading) {
      again = true;
      return state.loading;
    }
    var api = AW.ev.api;
    state.loading = Promise.all([
      api.flaggedUsers().then(function (ids) { flaggedUsers = new Set(ids); }, function () { /* keep */ }),
      api.summary().then(function (body) { state.summary = body; }, function () { /* keep */ })
    ]).then(function () {
      return api.anomalies();
    }).then(function (list) {
      state.error = null;
      put(list);
    }).catch(function (err) {
      state.error = err.message;
      bus.emit('data');
    }).then(function () {
      state.loading = null;
      if (again) {
        again = false;
        return refresh();
      }
    });
    return state.loading;
  }

  function matchesQuery(s, q) {
    if (!q) return true;
    return s.user_id.toLowerCase().indexOf(q) >= 0 || s.charger_id.toLowerCase().indexOf(q) >= 0 ||
      s.session_id.toLowerCase().indexOf(q) >= 0;
  }

  /** Sessions passing every filter except the type tab (the tabs count within these). */
  function filtered() {
    var q = state.query;
    var out = [];
    sessions.forEach(function (s) {
      if (!matchesQuery(s, q)) return;
      if (state.severity && s.severity !== state.severity) return;
      if (state.hideAcked && s.acknowledged) return;
      out.push(s);
    });
    return out;
  }

  function compare(key) {
    return function (a, b) {
      var x = key === 'types' ? a.types.join(',') : a[key];
      var y = key === 'types' ? b.types.join(',') : b[key];
      if (key === 'severity') { x = AW.SEVERITIES.indexOf(x); y = AW.SEVERITIES.indexOf(y); }
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return x < y ? -1 : 1;
    };
  }

  /** The table's rows: filtered, of the selected type, sorted. */
  function rows() {
    var list = filtered();
    if (state.type !== 'all') list = list.filter(function (s) { return s.types.indexOf(state.type) >= 0; });
    var cmp = compare(state.sort.key);
    var tie = compare('start');
    list.sort(function (a, b) {
      var c = cmp(a, b);
      if (state.sort.desc) c = -c;
      return c || -tie(a, b);
    });
    return list;
  }

  /** Counts for the cards and tabs: per type, critical and warnings. */
  function counts(list) {
    var out = { all: list.length, critical: 0, warnings: 0, types: {} };
    TYPES.forEach(function (t) { out.types[t] = 0; });
    list.forEach(function (s) {
      if (s.severity === 'critical') out.critical += 1;
      else out.warnings += 1;
      s.types.forEach(function (t) { out.types[t] = (out.types[t] || 0) + 1; });
    });
    return out;
  }

  /** The entities with the riskiest sessions: [{id, risk (max), count}], riskiest first. */
  function top(entity, list, n) {
    var by = new Map();
    list.forEach(function (s) {
      var id = s[entity];
      if (!id) return;
      var e = by.get(id) || { id: id, risk: 0, count: 0, flagged: false };
      e.risk = Math.max(e.risk, isNum(s.risk) ? s.risk : 0);
      e.count += 1;
      e.flagged = e.flagged || (entity === 'user_id' && s.user_flagged);
      by.set(id, e);
    });
    return Array.from(by.values()).sort(function (a, b) {
      return (b.risk - a.risk) || (b.count - a.count) || (a.id < b.id ? -1 : 1);
    }).slice(0, n || 5);
  }

  function setFilter(changes) {
    Object.keys(changes).forEach(function (k) { state[k] = changes[k]; });
    bus.emit('filters');
  }

  function select(s) {
    state.selected = s;
    bus.emit('selected', s);
  }

  /** After a flag or an acknowledgement: change the page's copies, then ask the server again. */
  function markUser(userId, flagged) {
    if (flagged) flaggedUsers.add(userId);
    else flaggedUsers.delete(userId);
    sessions.forEach(applyFlag);
    bus.emit('data');
  }

  function markAcknowledged(key, ack) {
    var s = sessions.get(key);
    if (s) s.acknowledged = ack;
    bus.emit('data');
  }

  function start() {
    var timer = null;
    AW.views.on('shown', function (name) {
      window.clearInterval(timer);
      if (name !== 'ev') return;
      refresh();
      timer = window.setInterval(refresh, POLL_MS);
    });
    // A stored batch of sessions (the EV feed, a replay, an upload) is pushed with its riskiest
    // anomalies, and the earlier sessions its evidence amended (a DoS burst's first two): they join
    // or replace rows of the table at once, and the counts follow shortly (one refresh for a burst).
    var soon = null;
    AW.live.on('events', function (batch) {
      if (!batch || batch.schema !== AW.ev.api.SCHEMA) return;
      var changed = [].concat(Array.isArray(batch.anomalies) ? batch.anomalies : [],
                              Array.isArray(batch.amended) ? batch.amended : []);
      if (changed.length) put(changed.map(AW.ev.api.session));
      if (AW.views.current !== 'ev' || soon !== null) return;
      soon = window.setTimeout(function () { soon = null; refresh(); }, 3000);
    });
  }

  AW.ev = AW.ev || {};
  AW.ev.store = {
    TYPES: TYPES,
    on: bus.on,
    state: state,
    all: sessions,
    isFlagged: function (userId) { return flaggedUsers.has(userId); },
    refresh: refresh,
    put: put,
    filtered: filtered,
    rows: rows,
    counts: counts,
    top: top,
    setFilter: setFilter,
    select: select,
    markUser: markUser,
    markAcknowledged: markAcknowledged,
    start: start
  };
})(window.AnomalyWatch);
