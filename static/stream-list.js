/* The "Live streams" section: search, built-in and user groups, and which streams get a chart.
 *
 * A group with few matching streams (CHART_LIMIT or fewer) shows a chart card for each. A
 * group with more shows a compact list instead (name, latest values, state, counts), a page
 * at a time, and charts only for the streams the user pins from the list. So a thousand
 * streams make a short page, and a thousand charts are never drawn: a chart exists only while
 * it is on screen, and only then is its stored window fetched.
 */
(function (AW) {
  'use strict';

  var dom = AW.dom;
  var fmt = AW.fmt;
  var el = dom.el;
  var $ = dom.$;
  var setText = dom.setText;

  var CHART_LIMIT = 12;   // more matching streams than this in a group: compact list
  var PAGE_ROWS = 50;
  var MAX_PINNED = 12;
  var PINNED_KEY = 'anomalyWatch.pinnedStreams';
  var GROUPS = [
    { kind: 'builtin', title: 'Built-in streams' },
    { kind: 'user', title: 'User streams' }
  ];

  var view = {
    query: '',
    kind: 'all',          // all | builtin | user
    sort: 'name',         // name | anomalies
    pinned: readPinned(), // stream names, oldest first
    groups: {},           // kind -> {section, title, count, grid, list, more, rows, limit}
    kinds: new Map(),     // stream -> the group it was last rendered in
    frame: false,
    rowsDirty: new Set()
  };

  function readPinned() {
    try {
      var names = JSON.parse(dom.stored(PINNED_KEY, '[]'));
      return Array.isArray(names) ? names.filter(function (n) { return typeof n === 'string'; }) : [];
    } catch (err) {
      return [];
    }
  }

  function kindOf(stream) { return AW.streams.isBuiltin(stream) ? 'builtin' : 'user'; }

  function matches(stream, query) {
    if (!query) return true;
    return stream.name.toLowerCase().indexOf(query) >= 0 ||
      String(stream.info.description || '').toLowerCase().indexOf(query) >= 0;
  }

  function anomalyCount(stream) { return fmt.isNum(stream.info.anomalies) ? stream.info.anomalies : 0; }

  function sorted(list) {
    if (view.sort === 'anomalies') {
      return list.slice().sort(function (a, b) {
        return (anomalyCount(b) - anomalyCount(a)) || (a.name < b.name ? -1 : 1);
      });
    }
    if (view.sort === 'name') return list.slice().sort(function (a, b) { return a.name < b.name ? -1 : 1; });
    return list;
  }

  // ---------------------------------------------------------------- DOM of a group

  function buildGroup(spec) {
    var section = el('section', 'stream-group', null, { 'aria-labelledby': 'group-' + spec.kind });
    section.dataset.kind = spec.kind;
    var head = el('div', 'stream-group-head');
    var title = el('h3', 'stream-group-title', spec.title, { id: 'group-' + spec.kind });
    var count = el('span', 'count-badge', '0');
    title.appendChild(count);
    head.appendChild(title);
    var hint = el('p', 'stream-group-hint', '');
    head.appendChild(hint);
    section.appendChild(head);
    var grid = el('div', 'chart-grid');
    section.appendChild(grid);
    var list = el('ul', 'stream-rows', null, { 'aria-label': spec.title });
    section.appendChild(list);
    var more = el('button', 'btn btn-small btn-ghost stream-more', 'Show more', { type: 'button' });
    section.appendChild(more);
    var group = { kind: spec.kind, title: spec.title, section: section, count: count, hint: hint, grid: grid,
      list: list, more: more, rows: new Map(), limit: PAGE_ROWS, compact: false };
    more.addEventListener('click', function () {
      group.limit += PAGE_ROWS;
      render();
    });
    return group;
  }

  function buildRow(stream) {
    var li = el('li', 'stream-row');
    li.dataset.stream = stream.name;
    var name = el('span', 'stream-row-name');
    name.appendChild(el('span', 'stream-row-title', stream.name));
    name.appendChild(el('span', 'stream-row-fields', stream.fields.join(', ')));
    li.appendChild(name);
    var value = el('span', 'stream-row-value', '—');
    li.appendChild(value);
    var status = el('span', 'chart-status', 'idle', { title: 'State of the latest point received live' });
    li.appendChild(status);
    var counts = el('span', 'stream-row-counts', '');
    li.appendChild(counts);
    var pin = el('button', 'btn btn-small stream-pin', 'Chart', { type: 'button', 'aria-pressed': 'false',
      'aria-label': 'Show the chart of ' + stream.name });
    pin.addEventListener('click', function () { togglePin(stream.name); });
    li.appendChild(pin);
    var row = { stream: stream, li: li, value: value, status: status, counts: counts, pin: pin };
    renderRow(row);
    return row;
  }

  function renderRow(row) {
    var stream = row.stream;
    var latest = stream.latest;
    setText(row.value, latest ? AW.points.valuesText(latest) : '—');
    // Without a live point since the page opened there is no state to show (the list fetches no windows).
    var state = !latest ? 'idle' : (latest.warming_up ? 'warming up' : (latest.is_anomaly ? 'anomaly' : 'normal'));
    setText(row.status, state);
    var cls = 'chart-status status-' + state.replace(' ', '-');
    if (row.status.className !== cls) row.status.className = cls;
    row.li.classList.toggle('is-alert', Boolean(latest && latest.is_anomaly));
    if (fmt.isNum(stream.info.points)) {
      setText(row.counts, fmt.count(stream.info.points) + ' pts · ' + fmt.count(anomalyCount(stream)) + ' anom.');
    }
    var pinned = view.pinned.indexOf(stream.name) >= 0;
    row.pin.setAttribute('aria-pressed', pinned ? 'true' : 'false');
    setText(row.pin, pinned ? 'Charted' : 'Chart');
  }

  // ---------------------------------------------------------------- what is shown

  function togglePin(name) {
    var at = view.pinned.indexOf(name);
    if (at >= 0) view.pinned.splice(at, 1);
    else {
      view.pinned.push(name);
      while (view.pinned.length > MAX_PINNED) view.pinned.shift();
    }
    dom.store(PINNED_KEY, JSON.stringify(view.pinned));
    render();
    if (at < 0) {
      var stream = AW.streams.get(name);
      if (stream && AW.charts.has(name)) AW.charts.cardFor(stream).scrollIntoView({ block: 'nearest' });
    }
  }

  /** Places cards in grid in the given order, moving only those out of place. */
  function placeCards(grid, streams) {
    streams.forEach(function (stream, i) {
      var card = AW.charts.cardFor(stream);
      if (grid.children[i] !== card) grid.insertBefore(card, grid.children[i] || null);
    });
  }

  function renderGroup(group, members, charted) {
    var visible = view.kind === 'all' || view.kind === group.kind;
    group.section.hidden = !visible || !members.length;
    setText(group.count, fmt.count(members.length));
    if (group.section.hidden) return;

    group.compact = members.length > CHART_LIMIT;
    group.section.classList.toggle('is-compact', group.compact);
    var chartStreams = group.compact
      ? members.filter(function (s) { return view.pinned.indexOf(s.name) >= 0; })
      : members;
    chartStreams.forEach(function (s) { charted.add(s.name); });
    placeCards(group.grid, chartStreams);
    group.grid.hidden = !chartStreams.length;

    var listed = group.compact ? sorted(members).slice(0, group.limit) : [];
    var keep = new Set(listed.map(function (s) { return s.name; }));
    group.rows.forEach(function (row, name) {
      if (!keep.has(name)) { row.li.remove(); group.rows.delete(name); }
    });
    listed.forEach(function (stream, i) {
      var row = group.rows.get(stream.name);
      if (!row) { row = buildRow(stream); group.rows.set(stream.name, row); } else renderRow(row);
      if (group.list.children[i] !== row.li) group.list.insertBefore(row.li, group.list.children[i] || null);
    });
    group.list.hidden = !group.compact;
    group.more.hidden = !group.compact || members.length <= group.limit;
    setText(group.more, 'Show ' + fmt.count(Math.min(PAGE_ROWS, members.length - group.limit)) + ' more of ' +
      fmt.count(members.length - group.limit));
    setText(group.hint, group.compact
      ? 'Many streams: a list, with charts for the streams you pick (Chart). Search to narrow it down.'
      : '');
  }

  function render() {
    var query = view.query;
    var byKind = { builtin: [], user: [] };
    AW.streams.all.forEach(function (stream) {
      var kind = kindOf(stream);
      view.kinds.set(stream.name, kind);
      if (matches(stream, query)) byKind[kind].push(stream);
    });
    var charted = new Set();
    GROUPS.forEach(function (spec) {
      var group = view.groups[spec.kind];
      renderGroup(group, byKind[spec.kind], charted);
    });
    // Charts that left the screen are freed; their streams keep their windows.
    AW.charts.shown().forEach(function (name) { if (!charted.has(name)) AW.charts.remove(name); });

    var total = AW.streams.all.size;
    var shown = (view.kind !== 'user' ? byKind.builtin.length : 0) + (view.kind !== 'builtin' ? byKind.user.length : 0);
    var countNode = $('stream-count');
    setText(countNode, (shown === total ? '' : fmt.count(shown) + ' of ') + fmt.count(total) +
      (total === 1 ? ' stream' : ' streams'));
    countNode.dataset.total = String(total);
    countNode.dataset.shown = String(shown);
    var empty = $('charts-empty');
    if (total) {
      empty.hidden = shown > 0;
      setText(empty, 'No stream matches \u201c' + view.query + '\u201d.');
    }
    renderKindCounts(byKind);
  }

  function renderKindCounts(byKind) {
    var counts = { all: byKind.builtin.length + byKind.user.length, builtin: byKind.builtin.length,
      user: byKind.user.length };
    Array.prototype.forEach.call(document.querySelectorAll('#stream-kind [data-kind]'), function (button) {
      setText(button.querySelector('.seg-count'), fmt.count(counts[button.dataset.kind]));
      button.setAttribute('aria-pressed', button.dataset.kind === view.kind ? 'true' : 'false');
    });
  }

  /** Many streams may arrive in one burst (status, a big submit): one render per frame. */
  function renderSoon() {
    if (view.frame) return;
    view.frame = true;
    window.requestAnimationFrame(function () {
      view.frame = false;
      render();
    });
  }

  function onChanged(stream) {
    var group = view.groups[kindOf(stream)];
    var row = group && group.rows.get(stream.name);
    if (!row) return;
    view.rowsDirty.add(row);
    if (view.rowsDirty.size > 1) return;
    window.requestAnimationFrame(function () {
      view.rowsDirty.forEach(renderRow);
      view.rowsDirty.clear();
    });
  }

  function onInfo(stream) {
    // A stream first seen in a tick is taken for a user stream until /api/status says otherwise.
    if (view.kinds.get(stream.name) !== kindOf(stream)) renderSoon();
    else onChanged(stream);
  }

  function start() {
    var container = $('charts');
    GROUPS.forEach(function (spec) {
      var group = buildGroup(spec);
      view.groups[spec.kind] = group;
      group.section.hidden = true;
      container.appendChild(group.section);
    });
    var search = $('stream-search');
    var searchTimer = null;
    search.addEventListener('input', function () {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(function () {
        view.query = search.value.trim().toLowerCase();
        GROUPS.forEach(function (spec) { view.groups[spec.kind].limit = PAGE_ROWS; });
        render();
      }, 120);
    });
    $('stream-kind').addEventListener('click', function (evt) {
      var button = evt.target.closest('[data-kind]');
      if (!button) return;
      view.kind = button.dataset.kind;
      render();
    });
    $('stream-sort').addEventListener('change', function (evt) {
      view.sort = evt.target.value;
      render();
    });
    AW.streams.on('added', renderSoon);
    AW.streams.on('changed', onChanged);
    AW.streams.on('info', onInfo);
    AW.streams.on('status', function () { if (view.sort === 'anomalies') renderSoon(); });
  }

  AW.streamList = {
    CHART_LIMIT: CHART_LIMIT,
    start: start,
    pin: togglePin,
    get pinned() { return view.pinned.slice(); }
  };
})(window.AnomalyWatch);
