// The dashboard's charts (Chart.js). The figures block is replaced by htmx every few seconds; its
// JSON block carries the new chart data, and the charts are updated in place (no animation).
(function () {
  "use strict";
  if (!window.Chart) return;
  var box = document.getElementById("charts");
  var labels = box ? box.dataset : {};
  var charts = {};
  var palette = ["#3182ce", "#38a169", "#d69e2e", "#c53030", "#805ad5", "#dd6b20", "#319795", "#d53f8c",
                 "#718096", "#2c5282", "#276749", "#975a16", "#9b2c2c", "#44337a"];

  function data() {
    var blocks = document.querySelectorAll("#dash .dash-data");
    return blocks.length ? JSON.parse(blocks[blocks.length - 1].textContent) : null;
  }

  function make(id, config) {
    var el = document.getElementById(id);
    if (!el) return;
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
    charts[id] = new Chart(el, config);
  }

  function trend(d) {
    return { labels: d.labels, datasets: [
      { label: labels.reported, data: d.reported, borderColor: "#3182ce", backgroundColor: "#3182ce", tension: 0.2 },
      { label: labels.closed, data: d.closed, borderColor: "#38a169", backgroundColor: "#38a169", tension: 0.2 }] };
  }
  function pie(d) {
    return { labels: d.labels, datasets: [{ data: d.values, backgroundColor: palette.slice(0, d.values.length) }] };
  }
  function ranking(d) {
    return { labels: d.labels, datasets: [
      { label: labels.onTime, data: d.on_time, backgroundColor: "#3182ce" },
      { label: labels.satisfaction, data: d.satisfaction, backgroundColor: "#38a169" }] };
  }

  function draw(all) {
    if (!all) return;
    var wanted = { "chart-days": ["line", trend(all.days)], "chart-weeks": ["line", trend(all.weeks)],
                   "chart-categories": ["pie", pie(all.categories)], "chart-ranking": ["bar", ranking(all.ranking)] };
    Object.keys(wanted).forEach(function (id) {
      var kind = wanted[id][0], d = wanted[id][1];
      if (charts[id]) {
        charts[id].data = d;
        charts[id].update("none");
      } else {
        var options = kind === "bar" ? { scales: { y: { min: 0, max: 100 } } } :
                      kind === "line" ? { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } : {};
        make(id, { type: kind, data: d, options: options });
      }
    });
  }

  draw(data());
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "dash") draw(data());
  });
}());
