// The console's map: grid boundaries and case points from the GeoJSON endpoints (already in the
// tile provider's datum), drawn as SVG by Leaflet. Without a tile URL, or when tiles fail to load,
// the layers are drawn on a blank background. Points refresh every few seconds.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var cfg = JSON.parse(document.getElementById("map-config").textContent);
  var status = document.getElementById("map-status");
  var map = L.map(el, { zoomControl: true, attributionControl: !!cfg.tile_url });
  map.setView([30.28, 120.12], 13);
  if (cfg.tile_url) {
    var tiles = L.tileLayer(cfg.tile_url, { attribution: cfg.attribution || "", subdomains: cfg.subdomains || "abc",
                                            maxZoom: 19 });
    var failed = 0;
    tiles.on("tileerror", function () {
      failed += 1;
      if (failed === 1 && status) status.textContent = status.dataset.offline;
    });
    tiles.addTo(map);
  }
  map.createPane("cases").style.zIndex = 450; // points above the grid polygons, so both can be clicked

  function text(s) {  // tooltips take HTML: names from the office's data go in as text
    var span = document.createElement("span");
    span.textContent = s;
    return span;
  }

  function colour(p) {
    if (p.card === "red") return "#c53030";
    if (p.card === "yellow") return "#d69e2e";
    if (p.overdue) return "#dd6b20";
    if (p.open) return "#3182ce";
    if (p.status === "closed") return "#38a169";
    return "#a0aec0";
  }

  var grids = L.geoJSON(null, {
    style: function () { return { color: "#2c5282", weight: 2, fillColor: "#90cdf4", fillOpacity: 0.12,
                                  className: "grid-boundary" }; },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(text(f.properties.name), { sticky: true });
      layer.on("click", function () {
        var url = cfg.card_url.replace("{id}", f.properties.id);
        if (window.htmx) htmx.ajax("GET", url, { target: "#grid-card", swap: "innerHTML" });
      });
    },
  }).addTo(map);

  var points = L.geoJSON(null, {
    pointToLayer: function (f, latlng) {
      var p = f.properties;
      var cls = "case-point case-" + p.status + (p.overdue ? " case-overdue" : "") + (p.card ? " case-card-" + p.card : "");
      return L.circleMarker(latlng, { pane: "cases", radius: 7, weight: 2, color: "#fff", fillColor: colour(p),
                                      fillOpacity: 0.95, className: cls });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(text(p.number + " · " + p.category + " · " + p.status_label));
      layer.on("click", function () { window.location.href = cfg.case_url.replace("{id}", p.id); });
    },
  }).addTo(map);

  function query() {
    var form = document.getElementById("map-filters");
    return form ? new URLSearchParams(new FormData(form)).toString() : "";
  }

  var shown = "";
  function loadPoints() {
    return fetch("/console/map/cases.geojson?" + query(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text === null || text === shown) return; // unchanged: leave the layer alone
        shown = text;
        var data = JSON.parse(text);
        points.clearLayers();
        points.addData(data);
        el.dataset.points = String(data.features.length);
        if (status && data.truncated) status.textContent = status.dataset.more;
      });
  }

  fetch("/console/map/grids.geojson", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(function (data) {
      grids.addData(data);
      el.dataset.grids = String(data.features.length);
      if (data.features.length) map.fitBounds(grids.getBounds(), { padding: [10, 10] });
      return loadPoints();
    })
    .then(function () {
      el.dataset.ready = "1";
      setInterval(loadPoints, cfg.refresh_ms || 5000);
    });
}());
