// The live map. Plain JavaScript over Leaflet, no build step. It reads its
// data by relative URL: the loader's API (api/v1/...) or, on a static site,
// lots.geojson and availability.json beside this page.
(function () {
  'use strict';

  var REFRESH_MS = 60 * 1000;
  var root = document.documentElement;

  var TEXT = {
    zh: {
      title: '新北市公有停車場即時車位', search: '搜尋名稱、地址或行政區', many: '空位多', few: '空位少', full: '已滿',
      unknown: '無資料', address: '地址', tel: '電話', fees: '收費', hours: '營業時間', capacity: '車位數',
      last24h: '過去 24 小時剩餘汽車位', close: '關閉', lang: 'English',
      count: function (shown, all) { return shown === all ? '共 ' + all + ' 個停車場' : '顯示 ' + shown + ' / ' + all + ' 個停車場'; },
      updated: '資料時間', free: '剩餘汽車位', of: '共', at: '觀測於', never: '未曾回報即時車位',
      unknownNow: '目前無即時資料（-9）', car: '汽車', motor: '機車', bike: '自行車',
      loading: '載入中…', failed: '無法載入資料，將於一分鐘後重試：', noHistory: '這段時間沒有有效的觀測值。',
      staticHistory: '靜態網站不提供歷史資料；即時伺服器（loader）的地圖才有圖表。', historyFailed: '無法載入歷史資料：',
      noMatch: '找不到符合的停車場', title2: '新北市公有停車場即時車位'
    },
    en: {
      title: 'New Taipei public parking: live free spaces', search: 'Search name, address or district', many: 'Many free',
      few: 'Few free', full: 'Full', unknown: 'No data', address: 'Address', tel: 'Phone', fees: 'Fees', hours: 'Hours',
      capacity: 'Capacity', last24h: 'Free car spaces, last 24 hours', close: 'Close', lang: '中文',
      count: function (shown, all) { return shown === all ? all + ' parking lots' : shown + ' of ' + all + ' parking lots'; },
      updated: 'Data as of', free: 'free car spaces', of: 'of', at: 'observed', never: 'never reported live figures',
      unknownNow: 'no live figure now (-9)', car: 'car', motor: 'motorcycle', bike: 'bicycle',
      loading: 'Loading…', failed: 'Could not load the data; retrying in a minute: ', noHistory: 'No valid observations in this period.',
      staticHistory: 'The history chart is available on the live server (the loader), not on this static copy.',
      historyFailed: 'Could not load the history: ', noMatch: 'No matching parking lot', title2: 'New Taipei parking'
    }
  };
  var lang = pickLang();
  function t(key) { return TEXT[lang][key]; }
  function pickLang() {
    var q = new URLSearchParams(location.search).get('lang');
    if (q === 'en' || q === 'zh') return q;
    try { var s = localStorage.getItem('parking-lang'); if (s === 'en' || s === 'zh') return s; } catch (e) { /* private mode */ }
    return 'zh';
  }

  // --- the map ------------------------------------------------------------
  var map = L.map('map', { zoomControl: true, preferCanvas: false }).setView([25.01, 121.46], 11);
  if (root.dataset.tiles) {
    L.tileLayer(root.dataset.tiles, { maxZoom: 19, attribution: root.dataset.attribution || '' }).addTo(map);
  }
  var markers = {};   // id -> {marker, lot}
  var lots = [];      // normalised lots, in ID order
  var source = null;  // 'api' or 'static' once known
  var selected = null;
  var fitted = false;

  // normalise accepts the API's properties and the export's lots.geojson.
  function normalise(f) {
    var p = f.properties || {};
    var c = (f.geometry && f.geometry.coordinates) || [];
    return {
      id: String(p.id || p.parking_id || f.id), name: p.name || '', area: p.area || p.district || '',
      address: p.address || '', tel: p.tel || '', payEx: p.pay_ex || '', serviceTime: p.service_time || '',
      totalCar: p.total_car || 0, totalMotor: p.total_motor || 0, totalBike: p.total_bike || 0,
      available: p.available_car === undefined ? null : p.available_car, observedAt: p.observed_at || null,
      lon: c[0], lat: c[1]
    };
  }

  // level is the marker's colour: full at 0, few under 10% of the capacity
  // (at least 5 spaces), grey when the figure is unknown.
  function level(l) {
    if (l.available === null || l.available === undefined) return 'unknown';
    if (l.available <= 0) return 'full';
    if (l.available < Math.max(5, l.totalCar * 0.1)) return 'few';
    return 'many';
  }

  function icon(l) {
    return L.divIcon({ className: 'lot-marker ' + level(l), iconSize: [16, 16], html: '' });
  }

  function place(l) {
    var m = markers[l.id];
    if (!m) {
      var marker = L.marker([l.lat, l.lon], { icon: icon(l), title: l.name, keyboard: true, riseOnHover: true });
      marker.on('click', function () { select(l.id, false); });
      m = markers[l.id] = { marker: marker, lot: l };
      marker.on('add', function () { tag(m); });
    } else {
      m.lot = l;
      m.marker.setLatLng([l.lat, l.lon]);
      m.marker.setIcon(icon(l));
      tag(m);
    }
    return m;
  }

  // tag marks a marker's element for tests and assistive technology; Leaflet
  // makes a new element whenever the icon changes.
  function tag(m) {
    var el = m.marker.getElement();
    if (!el) return;
    el.setAttribute('data-parking-id', m.lot.id);
    el.setAttribute('data-level', level(m.lot));
    el.setAttribute('aria-label', m.lot.name);
    el.classList.toggle('selected', m.lot.id === selected);
  }

  // --- data ---------------------------------------------------------------
  function getJSON(url) {
    return fetch(url, { cache: 'no-cache' }).then(function (r) {
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.json();
    });
  }

  function loadFrom(kind) {
    var urls = kind === 'api' ? ['api/v1/lots', 'api/v1/availability/latest'] : ['lots.geojson', 'availability.json'];
    return Promise.all(urls.map(getJSON)).then(function (docs) {
      if (!docs[0] || docs[0].type !== 'FeatureCollection') throw new Error(urls[0] + ': not a FeatureCollection');
      return { kind: kind, lots: docs[0], latest: docs[1] || {} };
    });
  }

  function load() {
    var want = root.dataset.source || 'auto';
    if (source) return loadFrom(source);
    if (want === 'api' || want === 'static') return loadFrom(want);
    return loadFrom('api').catch(function () { return loadFrom('static'); });
  }

  function apply(data) {
    source = data.kind;
    root.dataset.mode = source;
    delete root.dataset.error;
    // The newest snapshot's known values are fresher than or equal to the
    // lots' own; on a static site they may have been written a little later.
    var latest = {};
    (data.latest.data || []).forEach(function (d) { latest[d.parking_id] = d.available_car; });
    var seen = {};
    lots = data.lots.features.map(normalise).filter(function (l) {
      return typeof l.lon === 'number' && typeof l.lat === 'number';
    });
    lots.forEach(function (l) {
      if (Object.prototype.hasOwnProperty.call(latest, l.id)) {
        l.available = latest[l.id];
        if (data.latest.updated_at) l.observedAt = data.latest.updated_at;
      }
      seen[l.id] = true;
      place(l);
    });
    Object.keys(markers).forEach(function (id) {
      if (!seen[id]) { map.removeLayer(markers[id].marker); delete markers[id]; }
    });
    root.dataset.updated = data.latest.updated_at || '';
    filter();
    if (!fitted && lots.length) {
      map.fitBounds(L.latLngBounds(lots.map(function (l) { return [l.lat, l.lon]; })), { padding: [20, 20] });
      fitted = true;
    }
    if (selected) {
      if (markers[selected]) select(selected, true); else closeDetails();
    }
    status();
  }

  function refresh() {
    return load().then(apply).catch(function (err) {
      var s = document.getElementById('status');
      s.className = 'error';
      s.textContent = t('failed') + err.message;
      root.dataset.error = err.message;
    }).then(function () {
      root.dataset.state = 'ready';
    });
  }

  // --- search -------------------------------------------------------------
  var search = document.getElementById('search');
  var results = document.getElementById('results');

  function matches(l, q) {
    return !q || (l.name + ' ' + l.address + ' ' + l.area + ' ' + l.id).toLowerCase().indexOf(q) >= 0;
  }

  function filter() {
    var q = search.value.trim().toLowerCase();
    var shown = [];
    lots.forEach(function (l) {
      var m = markers[l.id];
      if (matches(l, q)) {
        shown.push(l);
        if (!map.hasLayer(m.marker)) m.marker.addTo(map);
      } else if (map.hasLayer(m.marker)) {
        map.removeLayer(m.marker);
      }
    });
    results.innerHTML = '';
    if (q) {
      shown.slice(0, 30).forEach(function (l) {
        var li = document.createElement('li');
        li.tabIndex = 0;
        li.textContent = l.name;
        var small = document.createElement('small');
        small.textContent = l.area + ' ' + l.address;
        li.appendChild(small);
        li.onclick = li.onkeydown = function (e) {
          if (e.type === 'keydown' && e.key !== 'Enter') return;
          results.hidden = true;
          select(l.id, false, true);
        };
        results.appendChild(li);
      });
      if (!shown.length) {
        var li = document.createElement('li');
        li.textContent = t('noMatch');
        results.appendChild(li);
      }
    }
    results.hidden = !q;
    root.dataset.shown = String(shown.length);
    status(shown.length);
  }

  var searchTimer = null;
  search.addEventListener('input', function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(filter, 120);
  });
  search.addEventListener('keydown', function (e) { if (e.key === 'Escape') { search.value = ''; filter(); } });

  // --- details ------------------------------------------------------------
  var details = document.getElementById('details');
  document.getElementById('close').onclick = closeDetails;

  function closeDetails() {
    var old = selected;
    selected = null;
    details.hidden = true;
    if (old && markers[old]) tag(markers[old]);
  }

  function select(id, quiet, fly) {
    var m = markers[id];
    if (!m) return;
    var old = selected;
    selected = id;
    if (old && markers[old]) tag(markers[old]);
    tag(m);
    results.hidden = true;
    if (fly) map.setView(m.marker.getLatLng(), Math.max(map.getZoom(), 16));
    var l = m.lot;
    text('d-name', l.name);
    var free = document.getElementById('d-free');
    free.innerHTML = '';
    if (l.available !== null && l.available !== undefined) {
      var strong = document.createElement('strong');
      strong.textContent = String(l.available);
      strong.className = level(l);
      strong.style.background = 'none';
      free.appendChild(strong);
      free.appendChild(document.createTextNode(' ' + t('free') + (l.totalCar ? '（' + t('of') + ' ' + l.totalCar + '）' : '')));
    } else {
      free.textContent = l.observedAt ? t('unknownNow') : t('never');
    }
    if (l.observedAt) {
      var when = document.createElement('div');
      when.textContent = t('at') + ' ' + showTime(l.observedAt);
      when.style.fontSize = '13px';
      when.style.color = '#5b6b7a';
      free.appendChild(when);
    }
    text('d-address', [l.area, l.address].filter(Boolean).join(' '));
    text('d-tel', l.tel || '—');
    text('d-fees', l.payEx || '—');
    text('d-hours', l.serviceTime || '—');
    text('d-capacity', t('car') + ' ' + l.totalCar + ' · ' + t('motor') + ' ' + l.totalMotor + ' · ' + t('bike') + ' ' + l.totalBike);
    details.hidden = false;
    details.dataset.selectedLot = id;
    history(l);
  }

  function text(id, s) { document.getElementById(id).textContent = s; }

  // showTime turns "2026-11-26T18:05:00+08:00" (always Taipei time) into "2026-11-26 18:05".
  function showTime(s) { return s ? s.slice(0, 10) + ' ' + s.slice(11, 16) : ''; }

  // isoTaipei writes a time as the API reads it: ISO 8601 with +08:00.
  function isoTaipei(ms) {
    var d = new Date(ms + 8 * 3600 * 1000);
    return d.toISOString().slice(0, 19) + '+08:00';
  }

  var historyCall = 0;
  function history(l) {
    var chart = document.getElementById('chart');
    if (source !== 'api') {
      chart.innerHTML = '<p></p>';
      chart.firstChild.textContent = t('staticHistory');
      return;
    }
    var call = ++historyCall;
    var to = Date.now();
    var from = to - 24 * 3600 * 1000;
    var url = 'api/v1/lots/' + encodeURIComponent(l.id) + '/availability?from=' + encodeURIComponent(isoTaipei(from)) +
      '&to=' + encodeURIComponent(isoTaipei(to));
    getJSON(url).then(function (obs) {
      if (call === historyCall) drawChart(chart, obs, from, to, l.totalCar);
    }).catch(function (err) {
      if (call !== historyCall) return;
      chart.innerHTML = '<p></p>';
      chart.firstChild.textContent = t('historyFailed') + err.message;
    });
  }

  // drawChart draws free spaces over [from, to) as an SVG line; gaps longer
  // than 20 minutes (unknown values) break the line.
  function drawChart(el, obs, from, to, total) {
    var W = 320, H = 130, L0 = 30, R = 8, T = 8, B = 20;
    var NS = 'http://www.w3.org/2000/svg';
    var max = Math.max(total || 0, 1);
    obs.forEach(function (o) { if (o.available_car > max) max = o.available_car; });
    var x = function (ms) { return L0 + (ms - from) / (to - from) * (W - L0 - R); };
    var y = function (v) { return T + (1 - v / max) * (H - T - B); };
    var svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('data-points', String(obs.length));
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', t('last24h'));
    function add(name, attrs, content) {
      var e = document.createElementNS(NS, name);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (content !== undefined) e.textContent = content;
      svg.appendChild(e);
      return e;
    }
    add('line', { x1: L0, y1: y(0), x2: W - R, y2: y(0), 'class': 'axis' });
    add('line', { x1: L0, y1: y(max), x2: W - R, y2: y(max), 'class': 'axis' });
    add('text', { x: L0 - 4, y: y(0) + 3, 'text-anchor': 'end' }, '0');
    add('text', { x: L0 - 4, y: y(max) + 3, 'text-anchor': 'end' }, String(max));
    [0, 0.5, 1].forEach(function (f) {
      var ms = from + f * (to - from);
      add('text', { x: x(ms), y: H - 4, 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle' }, isoTaipei(ms).slice(11, 16));
    });
    var runs = [], run = [], last = null;
    obs.forEach(function (o) {
      var ms = Date.parse(o.observed_at);
      if (last !== null && ms - last > 20 * 60 * 1000) { runs.push(run); run = []; }
      run.push(x(ms).toFixed(1) + ',' + y(o.available_car).toFixed(1));
      last = ms;
    });
    runs.push(run);
    runs.forEach(function (r) {
      if (r.length === 1) {
        var p = r[0].split(',');
        add('circle', { cx: p[0], cy: p[1], r: 2, 'class': 'line' });
      } else if (r.length > 1) {
        add('polyline', { points: r.join(' '), 'class': 'line' });
      }
    });
    el.innerHTML = '';
    el.appendChild(svg);
    if (!obs.length) {
      var p = document.createElement('p');
      p.textContent = t('noHistory');
      el.appendChild(p);
    }
  }

  // --- language and status ------------------------------------------------
  function translate() {
    root.lang = lang === 'zh' ? 'zh-Hant-TW' : 'en';
    document.title = t('title');
    document.querySelectorAll('[data-i18n]').forEach(function (e) { e.textContent = t(e.dataset.i18n); });
    document.querySelectorAll('[data-i18n-placeholder]').forEach(function (e) { e.placeholder = t(e.dataset.i18nPlaceholder); });
    document.querySelectorAll('[data-i18n-label]').forEach(function (e) { e.setAttribute('aria-label', t(e.dataset.i18nLabel)); });
    var b = document.getElementById('lang');
    b.textContent = t('lang');
    b.lang = lang === 'zh' ? 'en' : 'zh-Hant-TW';
    status();
    if (selected) select(selected, true);
  }

  document.getElementById('lang').onclick = function () {
    lang = lang === 'zh' ? 'en' : 'zh';
    try { localStorage.setItem('parking-lang', lang); } catch (e) { /* private mode */ }
    translate();
  };

  function status(shown) {
    var s = document.getElementById('status');
    if (root.dataset.error && s.className === 'error' && !lots.length) return;
    s.className = '';
    if (shown === undefined) shown = Number(root.dataset.shown || lots.length);
    text('count', root.dataset.state === 'loading' && !lots.length ? t('loading') : t('count')(shown, lots.length));
    text('updated', root.dataset.updated ? '· ' + t('updated') + ' ' + showTime(root.dataset.updated) : '');
  }

  translate();
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
