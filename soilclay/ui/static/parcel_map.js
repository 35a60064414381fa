/* soilclay parcel map: OpenLayers (UMD build, global `ol`), vector tiles of the parcels, a detail panel
 * and the per-AOI status. No request leaves this server: no basemap, everything under the app's base.
 *
 * Test hooks (DOM): #map[data-parcels-rendered] distinct parcels drawn in the current view,
 * #map[data-view-extent] that view (EPSG:3857, JSON), #map[data-ready] true after the first complete render
 * of a fitted view; #parcel-detail[data-parcel-key] and [data-field] cells with data-value; the skill plot's
 * points circle[data-version]. window.soilclayMap = {map, layer, pixelOf([x, y])}.
 */
(function () {
  "use strict";
  const base = document.querySelector('meta[name="soilclay-base"]').content;
  const mapEl = document.getElementById("map");
  const modeEl = document.getElementById("mode");
  const aoiEl = document.getElementById("aoi");
  const legendEl = document.getElementById("legend");
  const detailEl = document.getElementById("parcel-detail");
  const statusEl = document.getElementById("status");

  // --- colours ---------------------------------------------------------------------------------------
  const RAMPS = {
    clay: {min: 0, max: 60, stops: ["#fff5d6", "#e8b86b", "#b5651d", "#6b3a12", "#3b1f0a"], label: "clay (%)"},
    width: {min: 0, max: 20, stops: ["#e8f5e9", "#a5d6a7", "#fdd835", "#fb8c00", "#c62828"], label: "90 % interval width (% clay)"},
  };
  const FLAG_COLOURS = [
    ["none", "#2e7d32", "no flag"],
    ["too_few_pixels", "#9e9e9e", "too few pixels"],
    ["no_pixels", "#616161", "no pixels"],
    ["mostly_out_of_domain", "#8e24aa", "mostly out of domain"],
    ["pixels_sampled", "#1e88e5", "pixels sampled"],
    ["other", "#fb8c00", "other flags"],
  ];
  const NO_VALUE = "rgba(255,255,255,0.6)";

  function hexToRgb(h) {
    const n = parseInt(h.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  function rampColour(ramp, v) {
    const t = Math.max(0, Math.min(1, (v - ramp.min) / (ramp.max - ramp.min)));
    const s = ramp.stops, pos = t * (s.length - 1), i = Math.min(s.length - 2, Math.floor(pos)), f = pos - i;
    const a = hexToRgb(s[i]), b = hexToRgb(s[i + 1]);
    return `rgb(${a.map((c, k) => Math.round(c + (b[k] - c) * f)).join(",")})`;
  }
  function flagKey(flags) {
    if (!flags) return "none";
    const list = flags.split(",");
    for (const [key] of FLAG_COLOURS) if (list.includes(key)) return key;
    return "other";
  }
  function fillOf(props, mode) {
    if (mode === "flags") return FLAG_COLOURS.find(([k]) => k === flagKey(props.flags))[1];
    const v = mode === "clay" ? props.clay : props.width;
    return v === undefined || v === null ? NO_VALUE : rampColour(RAMPS[mode], v);
  }

  const styleCache = new Map();
  const stroke = new ol.style.Stroke({color: "#333", width: 0.6});
  const selectedStroke = new ol.style.Stroke({color: "#0969da", width: 3});
  let selectedKey = null;
  function style(feature) {
    const props = feature.getProperties();
    const colour = fillOf(props, modeEl.value);
    const selected = String(props.parcel_key) === String(selectedKey);
    const key = colour + (selected ? "|s" : "");
    if (!styleCache.has(key)) {
      styleCache.set(key, new ol.style.Style({fill: new ol.style.Fill({color: colour}),
        stroke: selected ? selectedStroke : stroke}));
    }
    return styleCache.get(key);
  }

  function renderLegend() {
    const mode = modeEl.value;
    legendEl.dataset.mode = mode;
    if (mode === "flags") {
      legendEl.innerHTML = "<strong>flags</strong>" + FLAG_COLOURS.map(([k, c, label]) =>
        `<div class="row" data-legend="${k}"><span class="swatch" style="background:${c}"></span>${label}</div>`).join("");
      return;
    }
    const r = RAMPS[mode];
    const mid = (r.min + r.max) / 2;
    legendEl.innerHTML = `<strong>${r.label}</strong>
      <div class="ramp" style="background:linear-gradient(to right,${r.stops.join(",")})"></div>
      <div class="ticks"><span>${r.min}</span><span>${mid}</span><span>≥ ${r.max}</span></div>
      <div class="row" data-legend="none"><span class="swatch" style="background:${NO_VALUE}"></span>no estimate</div>`;
  }

  // --- map ---------------------------------------------------------------------------------------------
  const source = new ol.source.VectorTile({
    format: new ol.format.MVT(),
    url: base + "tiles/{z}/{x}/{y}.pbf",
    maxZoom: 18,
  });
  const layer = new ol.layer.VectorTile({source: source, style: style, renderMode: "hybrid"});
  const map = new ol.Map({
    target: mapEl,
    layers: [layer],
    view: new ol.View({center: [0, 0], zoom: 2, maxZoom: 22}),
    controls: ol.control.defaults.defaults({attribution: false}).extend([new ol.control.ScaleLine()]),
  });
  let fitted = false;

  function countRendered() {
    const extent = map.getView().calculateExtent(map.getSize());
    const keys = new Set();
    for (const f of layer.getFeaturesInExtent(extent)) {
      const fExtent = f.getExtent ? f.getExtent() : f.getGeometry().getExtent();
      if (ol.extent.intersects(fExtent, extent)) keys.add(String(f.get("parcel_key")));
    }
    mapEl.dataset.parcelsRendered = String(keys.size);
    mapEl.dataset.viewExtent = JSON.stringify(extent);
    document.getElementById("rendered-note").textContent = `${keys.size} parcels in view`;
  }
  map.on("rendercomplete", function () {
    countRendered();
    if (fitted) mapEl.dataset.ready = "true";
  });
  map.on("movestart", function () { mapEl.dataset.ready = "false"; });

  map.on("singleclick", function (evt) {
    const hit = map.forEachFeatureAtPixel(evt.pixel, (f) => f, {layerFilter: (l) => l === layer});
    if (hit) showParcel(hit.get("parcel_key"));
  });
  map.on("pointermove", function (evt) {
    mapEl.style.cursor = map.hasFeatureAtPixel(evt.pixel, {layerFilter: (l) => l === layer}) ? "pointer" : "";
  });
  modeEl.addEventListener("change", function () { styleCache.clear(); renderLegend(); layer.changed(); });

  function fitTo(extent) {
    if (!extent) return;
    fitted = true;
    map.getView().fit(extent, {padding: [40, 40, 40, 40], maxZoom: 18});
  }

  // --- helpers -------------------------------------------------------------------------------------------
  function esc(v) {
    return String(v === null || v === undefined ? "–" : v).replace(/[&<>"']/g,
      (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }
  function num(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d === undefined ? 1 : d); }
  function when(v) { return v ? esc(String(v).replace("T", " ").slice(0, 19)) : "–"; }
  function flagsText(v) {
    if (Array.isArray(v)) return v.length ? v.join(", ") : "none";
    return v ? v : "none";
  }
  async function getJSON(path) {
    const r = await fetch(base + path, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  // --- parcel detail -------------------------------------------------------------------------------------
  function field(name, label, value, shown) {
    return `<tr><th>${label}</th><td data-field="${name}" data-value="${esc(value)}">${shown}</td></tr>`;
  }
  async function showParcel(key) {
    selectedKey = key;
    styleCache.clear();
    layer.changed();
    detailEl.dataset.parcelKey = "";
    detailEl.innerHTML = "<h2>Parcel</h2><p class='hint'>Loading…</p>";
    let doc;
    try {
      doc = await getJSON(`api/parcels/${encodeURIComponent(key)}`);
    } catch (e) {
      detailEl.innerHTML = `<h2>Parcel</h2><p class="error">${esc(e.message)}</p>`;
      return;
    }
    const p = doc.parcel;
    const rows = [
      field("clay", "clay (mean)", p.clay, p.clay === null ? "no estimate" : `<span class="big">${num(p.clay)} %</span>`),
      field("interval", "90 % interval", `${p.clay_lower},${p.clay_upper}`,
        p.clay_lower === null ? "–" : `${num(p.clay_lower)} – ${num(p.clay_upper)} % (width ${num(p.width)})`),
      field("clay_median", "median", p.clay_median, num(p.clay_median)),
      field("pixel_count", "pixels", p.pixel_count, esc(p.pixel_count)),
      field("bare_fraction", "bare fraction", p.bare_fraction, num(p.bare_fraction, 2)),
      field("out_of_domain_share", "out of domain", p.out_of_domain_share, num(p.out_of_domain_share, 2)),
      field("flags", "flags", flagsText(p.flags), esc(flagsText(p.flags))),
      field("model_version", "model", p.model_version,
        p.model_version === null ? "–" : `v${esc(p.model_version)} (${esc(p.model_status)})`),
      field("s2_composite_version", "Sentinel-2 composite", p.s2_composite_version,
        p.s2_composite_version === null ? "–" : `v${esc(p.s2_composite_version)} (id ${esc(p.s2_composite_id)})`),
      field("s1_composite_id", "Sentinel-1 composite id", p.s1_composite_id, esc(p.s1_composite_id)),
      field("hectares", "area", p.hectares, `${num(p.hectares, 2)} ha`),
      field("predicted_at", "estimated", p.predicted_at, when(p.predicted_at)),
    ].join("");
    const history = doc.history.map((h) => `<tr data-history-version="${esc(h.model_version)}">
      <td>v${esc(h.model_version)} ${esc(h.model_status)}</td><td>S2 v${esc(h.s2_composite_version)}</td>
      <td>${num(h.clay)}</td><td>${h.clay_lower === null ? "–" : `${num(h.clay_lower)}–${num(h.clay_upper)}`}</td>
      <td>${esc(h.pixel_count)}</td><td>${esc(flagsText(h.flags))}${h.geometry_current ? "" : " (old shape)"}</td>
      <td>${when(h.predicted_at)}</td></tr>`).join("");
    detailEl.innerHTML = `<h2>Parcel ${esc(p.parcel_id)} <small class="hint">${esc(p.source)} · key ${esc(p.parcel_key)}</small></h2>
      <table>${rows}</table>
      <h3>History (${doc.history.length})</h3>
      <table id="history"><tr><th>model</th><th>composite</th><th>clay</th><th>interval</th><th>px</th><th>flags</th><th>when</th></tr>${history}</table>`;
    detailEl.dataset.parcelKey = String(p.parcel_key);
  }

  // --- status --------------------------------------------------------------------------------------------
  function skillPlot(models, champion) {
    const pts = models.map((m) => ({v: m.version, y: m.gate_rmse !== null ? m.gate_rmse : m.cnn_rmse,
      kind: m.gate_rmse !== null ? "gate RMSE" : "CNN RMSE", status: m.status}));
    const W = 360, H = 150, L = 40, R = 12, T = 12, B = 30;
    const ys = pts.filter((p) => p.y !== null && p.y !== undefined).map((p) => p.y);
    const yMax = ys.length ? Math.max(...ys) * 1.15 : 1, yMin = 0;
    const vMin = pts.length ? pts[0].v : 0, vMax = pts.length ? pts[pts.length - 1].v : 1;
    const x = (v) => L + (vMax === vMin ? (W - L - R) / 2 : (v - vMin) / (vMax - vMin) * (W - L - R));
    const y = (v) => T + (1 - (v - yMin) / (yMax - yMin)) * (H - T - B);
    let svg = `<svg class="skill" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="model skill by version">`;
    svg += `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#888"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#888"/>`;
    for (const t of [0, yMax / 2, yMax]) {
      svg += `<text x="${L - 4}" y="${y(t) + 4}" font-size="10" text-anchor="end">${t.toFixed(1)}</text>`;
    }
    svg += `<text x="12" y="${T + (H - T - B) / 2}" font-size="10" transform="rotate(-90 12 ${T + (H - T - B) / 2})" text-anchor="middle">RMSE (% clay)</text>`;
    const drawn = pts.filter((p) => p.y !== null && p.y !== undefined);
    if (drawn.length > 1) {
      svg += `<polyline fill="none" stroke="#8c959f" stroke-dasharray="3 2" points="${drawn.map((p) => `${x(p.v)},${y(p.y)}`).join(" ")}"/>`;
    }
    for (const p of pts) {
      svg += `<text x="${x(p.v)}" y="${H - B + 14}" font-size="10" text-anchor="middle">v${p.v}</text>`;
      if (p.y === null || p.y === undefined) continue;
      const cls = p.v === champion ? "champion" : "";
      svg += `<circle class="${cls}" data-version="${p.v}" data-rmse="${p.y}" data-status="${esc(p.status)}" cx="${x(p.v)}" cy="${y(p.y)}" r="5"><title>v${p.v} ${esc(p.status)}: ${p.kind} ${p.y.toFixed(2)}</title></circle>`;
    }
    return svg + "</svg>";
  }
  function runRows(runs) {
    return runs.map((r) => `<tr data-run="${esc(r.run_id)}"><td>${esc(r.stage)}</td>
      <td class="status-${esc(r.status)}">${esc(r.status)}</td><td>${when(r.started_at)}</td></tr>` +
      (r.error ? `<tr><td colspan="3" class="error">${esc(r.error)}</td></tr>` : "")).join("");
  }
  function renderStatus(doc) {
    const aoi = doc.aois.find((a) => a.name === aoiEl.value) || doc.aois[0];
    let html = "<h2>Status</h2>";
    if (!aoi) {
      statusEl.innerHTML = html + "<p class='hint'>No AOI registered.</p>";
      return;
    }
    html += `<div data-aoi="${esc(aoi.name)}"><h3>AOI ${esc(aoi.name)} <small class="hint">${esc(aoi.grid_crs)}</small></h3>`;
    html += "<h3>Scenes</h3><table><tr><th>collection</th><th>scenes</th><th>newest acquisition</th><th>last seen</th></tr>" +
      aoi.scenes.map((s) => `<tr data-collection="${esc(s.collection)}"><td>${esc(s.collection)}</td><td>${esc(s.scenes)}</td>
        <td>${when(s.newest_acquired)}</td><td>${when(s.last_seen)}</td></tr>`).join("") + "</table>";
    html += "<h3>Composites</h3><table id='composites'><tr><th>sensor</th><th>version</th><th>period</th><th>scenes (skipped)</th><th>built</th></tr>" +
      aoi.composites.map((c) => `<tr data-composite-version="${esc(c.version)}" data-sensor="${esc(c.sensor)}">
        <td>${esc(c.sensor)}</td><td>v${esc(c.version)}</td><td>${esc(c.period_start)} – ${esc(c.period_end)}</td>
        <td>${esc(c.scene_count)} (${esc(c.skipped_count)})</td><td>${when(c.created_at)}</td></tr>`).join("") + "</table>";
    html += `<h3>Models <small class="hint">champion: <span id="champion" data-version="${esc(doc.champion)}">${doc.champion === null ? "none" : "v" + esc(doc.champion)}</span></small></h3>`;
    html += `<div id="skill-plot">${skillPlot(doc.models, doc.champion)}</div>`;
    html += "<table id='models'><tr><th>version</th><th>status</th><th>gate RMSE</th><th>CNN R²</th><th>decision</th></tr>" +
      doc.models.slice().reverse().map((m) => `<tr data-model-version="${esc(m.version)}"><td>v${esc(m.version)}</td>
        <td>${esc(m.status)}</td><td>${num(m.gate_rmse, 2)}</td><td>${num(m.cnn_r2, 3)}</td><td>${esc(m.decision_reason)}</td></tr>`).join("") + "</table>";
    const failures = aoi.failures.concat(doc.unassigned.failures);
    html += `<h3>Failures (${failures.length})</h3><table id="failures">${runRows(failures)}</table>`;
    html += `<h3>Recent runs</h3><table id="runs"><tr><th>stage</th><th>status</th><th>started</th></tr>${runRows(aoi.runs)}</table></div>`;
    statusEl.innerHTML = html;
  }

  let statusDoc = null;
  async function loadStatus(first) {
    try {
      statusDoc = await getJSON("api/status");
    } catch (e) {
      statusEl.innerHTML = `<h2>Status</h2><p class="error">${esc(e.message)}</p>`;
      if (first) fitTo(null);
      return;
    }
    if (first) {
      aoiEl.innerHTML = statusDoc.aois.map((a) => `<option value="${esc(a.name)}">${esc(a.name)}</option>`).join("");
      const aoi = statusDoc.aois[0];
      fitTo(aoi ? aoi.extent_3857 : statusDoc.parcels_extent_3857);
    }
    renderStatus(statusDoc);
  }
  aoiEl.addEventListener("change", function () {
    const aoi = statusDoc && statusDoc.aois.find((a) => a.name === aoiEl.value);
    if (aoi) fitTo(aoi.extent_3857);
    if (statusDoc) renderStatus(statusDoc);
  });

  renderLegend();
  loadStatus(true);
  setInterval(() => loadStatus(false), 60000);

  window.soilclayMap = {
    map: map,
    layer: layer,
    showParcel: showParcel,
    pixelOf: function (coordinate) {
      const px = map.getPixelFromCoordinate(coordinate);
      return px ? [px[0], px[1]] : null;
    },
  };
})();
