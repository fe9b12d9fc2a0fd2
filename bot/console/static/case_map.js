// The case page's small map: the case's grid and point (in the tiles' datum, with the tile settings
// in the same answer), on a blank background when no tile server is configured or reachable.
(function () {
  "use strict";
  var el = document.getElementById("case-map");
  if (!el || !window.L) return;
  fetch(el.dataset.url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
    var cfg = data.tiles || {};
    var map = L.map(el, { zoomControl: true, attributionControl: !!cfg.tile_url, scrollWheelZoom: false });
    map.setView([30.28, 120.12], 15);
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { attribution: cfg.attribution || "", subdomains: cfg.subdomains || "abc", maxZoom: 19 }).addTo(map);
    }
    var layer = L.geoJSON(data, {
      style: function (f) {  // applied to every vector layer, the point's circle too: only for the grid
        return f.geometry.type === "Point" ? {} : { color: "#2c5282", weight: 2, fillOpacity: 0.08, className: "grid-boundary" };
      },
      pointToLayer: function (f, latlng) {
        return L.circleMarker(latlng, { radius: 8, weight: 2, color: "#fff", fillColor: "#c53030", fillOpacity: 0.95,
                                        className: "case-point" });
      },
    }).addTo(map);
    var point = data.features.filter(function (f) { return f.properties.kind === "case"; })[0];
    if (point) map.setView([point.geometry.coordinates[1], point.geometry.coordinates[0]], 16);
    else if (data.features.length) map.fitBounds(layer.getBounds());
    el.dataset.ready = "1";
  });
}());
