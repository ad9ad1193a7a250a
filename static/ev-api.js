/* The EV charging endpoints as the page uses them, in one place, and one shape for a session.
 * The events API (server/api_events.py):
 *
 *   POST   /api/upload?schema=ev_charging     multipart "file" (CSV or JSON lines), imported whole
 *                                             or not at all: {events, anomalies (a count), types,
 *                                             severities, anomaly_list: [...], truncated}
 *   GET    /api/anomalies?schema=ev_charging  {anomalies: [...]} newest first: scored events with
 *                                             fields, entities, types, risk, severity, explanation,
 *                                             signals, flagged and acknowledged {by, at, note}
 *   GET    /api/events?schema=...&user_id=U   a user's recent sessions, normal ones included
 *   GET    /api/events/summary?schema=...     {events, anomalies, severities, types, top, flagged}
 *   GET    /api/flags?schema=...              flagged entities
 *   POST   /api/flags, DELETE /api/flags      {schema, entity, id, by?, note?}
 *   POST   /api/anomalies/<id>/acknowledge    {by, note} -> {id, acknowledged: {by, at, note}}
 *
 * A scored event carries its fields under `fields` and `entities` (ScoredEvent in
 * server/pipeline/event.py); session() also reads them at the top level, as an upload's
 * summary or a flatter answer may put them.
 */
(function (AW) {
  'use strict';

  var isNum = AW.fmt.isNum;
  var SCHEMA = 'ev_charging';

  function qs(params) {
    return Object.keys(params).filter(function (k) {
      return params[k] !== undefined && params[k] !== null && params[k] !== '';
    }).map(function (k) {
      return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]);
    }).join('&');
  }

  function number(v) {
    if (isNum(v)) return v;
    var n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    return isFinite(n) ? n : null;
  }

  function epochSeconds(v) {
    if (isNum(v)) return v > 1e12 ? v / 1000 : v;
    if (typeof v === 'string' && v) {
      var ms = Date.parse(v);
      if (isFinite(ms)) return ms / 1000;
    }
    return null;
  }

  /** The acknowledgement of an anomaly as {by, at, note}, or null. */
  function acknowledgement(raw) {
    var ack = raw.acknowledged !== undefined ? raw.acknowledged : raw.acknowledgement;
    if (ack && typeof ack === 'object') {
      return { by: ack.by || ack.acknowledged_by || '', at: epochSeconds(ack.at || ack.acknowledged_at),
        note: ack.note || '' };
    }
    if (ack === true || raw.acknowledged_at || raw.acknowledged_by) {
      return { by: raw.acknowledged_by || '', at: epochSeconds(raw.acknowledged_at), note: raw.ack_note || raw.note || '' };
    }
    return null;
  }

  /** One session (an anomaly or a plain event) in the shape the view uses. */
  function session(raw) {
    var fields = raw.fields || {};
    var entities = raw.entities || {};
    function pick(name) {
      if (raw[name] !== undefined && raw[name] !== null) return raw[name];
      if (fields[name] !== undefined && fields[name] !== null) return fields[name];
      return entities[name];
    }
    var types = Array.isArray(raw.types) ? raw.types : (Array.isArray(raw.anomaly_types) ? raw.anomaly_types
      : (typeof raw.type === 'string' ? [raw.type] : []));
    var sessionId = pick('session_id') || raw.event_id;
    var id = raw.anomaly_id !== undefined ? raw.anomaly_id : raw.id;
    var s = {
      id: id,
      key: String(id !== undefined && id !== null ? id : sessionId),
      session_id: sessionId === undefined ? '' : String(sessionId),
      user_id: String(pick('user_id') || ''),
      charger_id: String(pick('charger_id') || ''),
      start: epochSeconds(raw.timestamp !== undefined ? raw.timestamp : pick('start_time')),
      duration: number(pick('duration')),
      energy: number(pick('energy')),
      payment: number(pick('payment')),
      ip_address: pick('ip_address') || '',
      payment_per_kwh: number(pick('payment_per_kwh')),
      types: types.slice(),
      risk: number(raw.risk),
      severity: typeof raw.severity === 'string' ? raw.severity : null,
      is_anomaly: raw.is_anomaly !== undefined ? Boolean(raw.is_anomaly) : types.length > 0,
      explanation: typeof raw.explanation === 'string' ? raw.explanation : '',
      signals: Array.isArray(raw.signals) ? raw.signals : [],
      flagged: Boolean(raw.flagged),   // an entity of the event was flagged when it was scored
      user_flagged: false,             // the user is flagged now (ev-store.js, from GET /api/flags)
      acknowledged: acknowledgement(raw),
      raw: raw
    };
    if (s.payment_per_kwh === null && isNum(s.payment) && isNum(s.energy) && s.energy >= 0.5) {
      s.payment_per_kwh = s.payment / s.energy;
    }
    return s;
  }

  function isEvRecord(raw) {
    if (!raw || typeof raw !== 'object') return false;
    if (raw.schema !== undefined) return raw.schema === SCHEMA;
    return raw.session_id !== undefined || Boolean(raw.fields && raw.fields.session_id !== undefined);
  }

  function listOf(body, keys) {
    for (var i = 0; i < keys.length; i += 1) {
      if (body && Array.isArray(body[keys[i]])) return body[keys[i]];
    }
    return Array.isArray(body) ? body : [];
  }

  var api = {
    SCHEMA: SCHEMA,
    session: session,
    isEvRecord: isEvRecord,

    /** Sends a file; onProgress(fraction) while its bytes go up. Resolves with the summary. */
    upload: function (file, onProgress) {
      var form = new FormData();
      form.append('file', file, file.name);
      return AW.api.upload('/api/upload?' + qs({ schema: SCHEMA }), form, onProgress);
    },

    /** The anomalies of an upload's summary, as sessions. */
    uploaded: function (body) {
      return listOf(body, ['anomaly_list']).filter(isEvRecord).map(session);
    },

    anomalies: function (limit) {
      var n = limit || 1000;
      return AW.api('/api/anomalies?' + qs({ schema: SCHEMA, limit: n })).then(function (body) {
        if (body && body.schema === SCHEMA) return listOf(body, ['anomalies']).map(session);
        // A server whose /api/anomalies does not serve schemas yet: the anomalous ones among
        // the recent events.
        return AW.api('/api/events?' + qs({ schema: SCHEMA, limit: n })).then(function (events) {
          return listOf(events, ['events']).filter(function (e) { return e.is_anomaly; }).map(session);
        });
      });
    },

    summary: function () {
      return AW.api('/api/events/summary?' + qs({ schema: SCHEMA }));
    },

    /** The ids of the flagged users. */
    flaggedUsers: function () {
      return AW.api('/api/flags?' + qs({ schema: SCHEMA })).then(function (body) {
        return listOf(body, ['flags']).filter(function (f) { return f.entity === 'user_id'; })
          .map(function (f) { return String(f.entity_id); });
      });
    },

    userSessions: function (userId, limit) {
      return AW.api('/api/events?' + qs({ schema: SCHEMA, user_id: userId, limit: limit || 50 })).then(function (body) {
        return listOf(body, ['events', 'sessions', 'anomalies']).map(session);
      });
    },

    /** Flags (or, with flagged false, clears) a user; persisted by the server. */
    flagUser: function (userId, flagged, by) {
      var body = { schema: SCHEMA, entity: 'user_id', id: userId };
      if (flagged && by) body.by = by;
      return AW.api('/api/flags', { method: flagged ? 'POST' : 'DELETE', body: body });
    },

    acknowledge: function (anomalyId, by, note) {
      return AW.api('/api/anomalies/' + encodeURIComponent(anomalyId) + '/acknowledge',
        { method: 'POST', body: { by: by, note: note } });
    }
  };

  AW.ev = AW.ev || {};
  AW.ev.api = api;
})(window.AnomalyWatch);
