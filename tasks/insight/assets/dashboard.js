/* strava-elt dashboard: draws the charts from the JSON embedded in this page (no network). */
(function () {
  "use strict";
  var STARTED = performance.now();
  var DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
  /* Milliseconds each step took (the JSON parse, each chart, the heatmap): the bench prints them. */
  var SECTIONS = { json: Math.round((performance.now() - STARTED) * 10) / 10 };
  function timed(id, started) { SECTIONS[id] = Math.round((performance.now() - started) * 10) / 10; }
  var DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  var PALETTE = ["#fc4c02", "#2b6cb0", "#2f855a", "#805ad5", "#d69e2e", "#319795", "#c53030", "#718096"];
  var charts = [];
  var EXPECTED = document.querySelectorAll("canvas[data-chart]").length;
  var TILES = "https://tile.openstreetmap.org";

  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#52606d";
  Chart.defaults.plugins.legend.labels.boxWidth = 12;

  /* Integer ticks on a matrix axis whose range is padded by half a cell. */
  function fixedTicks(values) {
    return function (axis) { axis.ticks = values.map(function (v) { return { value: v }; }); };
  }
  /* A matrix chart's cells sized to its area (columns x rows, 2 px apart) after each layout, as
     plain numbers: a size function per cell would make Chart.js resolve every cell's options. */
  function fitCells(columns, rows) {
    return {
      id: "fitCells",
      afterLayout: function (chart) {
        var a = chart.chartArea, w = Math.max(2, a.width / columns - 2), h = Math.max(2, a.height / rows - 2);
        chart.data.datasets.forEach(function (d) { d.width = w; d.height = h; });
      }
    };
  }
  /* Points sorted by x for a dataset given to Chart.js as it is (parsing: false): it then reads
     each point's x and y itself instead of looking both keys up, and takes the data as sorted. */
  function byX(points) { return points.sort(function (a, b) { return a.x - b.x; }); }
  function range(from, to, step) {
    var out = [];
    for (var v = from; v <= to; v += step || 1) { out.push(v); }
    return out;
  }

  function colour(i) { return PALETTE[i % PALETTE.length]; }
  function fmt(n, digits) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-GB", { maximumFractionDigits: digits || 0 });
  }
  function hex2rgb(hex) {
    return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)];
  }
  /* A colour between light grey (t = 0) and a strong colour (t = 1). */
  function ramp(t, to) {
    var a = [235, 237, 240], b = hex2rgb(to || "#fc4c02");
    t = Math.max(0, Math.min(1, t));
    return "rgb(" + a.map(function (v, i) { return Math.round(v + (b[i] - v) * t); }).join(",") + ")";
  }
  /* Kudos colour scale for start points: blue (few) -> orange -> red (many), in HEAT_STEPS steps. */
  var HEAT_STEPS = 16;
  function heat(t) {
    var stops = [[43, 108, 176], [246, 173, 85], [197, 48, 48]];
    t = Math.max(0, Math.min(1, t));
    var s = t < 0.5 ? 0 : 1, u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    var a = stops[s], b = stops[s + 1];
    return "rgb(" + a.map(function (v, i) { return Math.round(v + (b[i] - v) * u); }).join(",") + ")";
  }

  function draw(id, build) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    var started = performance.now();
    try {
      var config = build();
      if (!config) {
        canvas.parentNode.innerHTML = '<p class="empty">No data yet</p>';
        return;
      }
      charts.push(new Chart(canvas, config));
    } catch (err) {
      console.error("chart " + id + " failed: " + err);
      canvas.parentNode.innerHTML = '<p class="empty">This chart could not be drawn.</p>';
    } finally {
      timed(id, started);
    }
  }

  /* 1. Monthly distance by sport: stacked bars. */
  draw("chart-monthly", function () {
    var m = DATA.monthly;
    if (!m.labels.length) { return null; }
    return {
      type: "bar",
      data: {
        labels: m.labels,
        datasets: m.series.map(function (s, i) {
          return { label: s.label, data: s.data, backgroundColor: colour(i), stack: "km" };
        })
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: { x: { stacked: true, grid: { display: false } }, y: { stacked: true, title: { display: true, text: "km" } } },
        plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + fmt(c.parsed.y, 1) + " km"; } } } }
      }
    };
  });

  /* 2. Weekly kudos by workout type, with the week-on-week % change of the total. */
  draw("chart-weekly-kudos", function () {
    var w = DATA.weeklyKudos;
    if (!w.labels.length) { return null; }
    var datasets = w.series.map(function (s, i) {
      return { type: "bar", label: s.label, data: s.data, pct: s.pct, backgroundColor: colour(i), stack: "kudos", yAxisID: "y", order: 2 };
    });
    datasets.push({
      type: "line", label: "% change (all types)", data: w.totalPct, yAxisID: "pct", order: 1,
      borderColor: "#1f2933", backgroundColor: "#1f2933", borderWidth: 1.5, pointRadius: 2, spanGaps: true
    });
    return {
      data: { labels: w.labels, datasets: datasets },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, grid: { display: false } },
          y: { stacked: true, title: { display: true, text: "kudos" } },
          pct: { position: "right", grid: { display: false }, title: { display: true, text: "% change" },
                 ticks: { callback: function (v) { return v + "%"; } } }
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (c) {
                if (c.dataset.yAxisID === "pct") { return "all types: " + (c.parsed.y === null ? "–" : fmt(c.parsed.y, 1) + "%"); }
                var p = c.dataset.pct[c.dataIndex];
                return c.dataset.label + ": " + fmt(c.parsed.y) + " kudos" + (p === null ? "" : " (" + (p > 0 ? "+" : "") + fmt(p, 1) + "%)");
              }
            }
          }
        }
      }
    };
  });

  /* 3. Kudos against distance, one colour per sport. */
  draw("chart-kudos-distance", function () {
    var a = DATA.activities;
    if (!a.rows.length) { return null; }
    var bySport = a.sports.map(function () { return []; });
    a.rows.forEach(function (r) { bySport[r[1]].push({ x: r[2], y: r[3], name: r[6], date: r[0] }); });
    return {
      type: "scatter",
      data: {
        datasets: a.sports.map(function (s, i) {
          return { label: s, data: byX(bySport[i]), backgroundColor: colour(i) + "aa", pointRadius: 2.5 };
        }).filter(function (d) { return d.data.length; })
      },
      options: {
        parsing: false,
        scales: { x: { title: { display: true, text: "distance (km)" } }, y: { title: { display: true, text: "kudos" }, beginAtZero: true } },
        plugins: { tooltip: { callbacks: { label: function (c) {
          var p = c.raw; return [p.name || "(no name)", p.date + " · " + fmt(p.x, 1) + " km · " + p.y + " kudos"];
        } } } }
      }
    };
  });

  /* 4. Calendar heatmap: activities per day over the last year (columns are weeks). */
  draw("chart-calendar", function () {
    var cal = DATA.calendar;
    if (!cal.cells.length) { return null; }
    var max = Math.max(1, cal.max), byCount = [];
    /* One dataset per activity count (a few): constant colours, which Chart.js shares between cells;
       the cells' size follows the chart area (set after each layout by fitCells). */
    cal.cells.forEach(function (c) {
      (byCount[c[2]] = byCount[c[2]] || []).push({ x: c[0], y: c[1], v: c[2], km: c[3], date: c[4] });
    });
    var datasets = [];
    byCount.forEach(function (cells, v) {
      if (cells) {
        datasets.push({ label: "activities", data: byX(cells), borderWidth: 0, width: 8, height: 8,
                        backgroundColor: v ? ramp(0.25 + 0.75 * v / max) : "#ebedf0" });
      }
    });
    return {
      type: "matrix",
      data: { datasets: datasets },
      plugins: [fitCells(cal.weeks, 7)],
      options: {
        parsing: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: function (items) { return items[0].raw.date; },
                                  label: function (c) { return c.raw.v + " activities · " + fmt(c.raw.km, 1) + " km"; } } }
        },
        scales: {
          x: { type: "linear", min: -0.5, max: cal.weeks - 0.5, offset: false, grid: { display: false },
               afterBuildTicks: fixedTicks(Object.keys(cal.monthTicks).map(Number)),
               ticks: { autoSkip: false, maxRotation: 0, callback: function (v) { return cal.monthTicks[v] || ""; } } },
          y: { type: "linear", min: 0.5, max: 7.5, reverse: true, offset: false, grid: { display: false },
               afterBuildTicks: fixedTicks(range(1, 7)),
               ticks: { autoSkip: false, callback: function (v) { return DAYS[v - 1] || ""; } } }
        }
      }
    };
  });

  /* 5. Start points coloured by kudos (longitude/latitude; no map tiles). */
  draw("chart-start-points", function () {
    var s = DATA.startPoints, rows = DATA.activities.rows;
    if (!s.idx.length) { return null; }
    var max = Math.max(1, s.kudosMax), steps = [];
    /* One dataset per colour step (16 steps): constant options, which Chart.js shares between
       points instead of calling a colour function for each; the most-kudosed on top. */
    s.idx.forEach(function (i) {
      var r = rows[i], step = Math.round(Math.max(0, Math.min(1, r[3] / max)) * (HEAT_STEPS - 1));
      (steps[step] = steps[step] || []).push({ x: r[5], y: r[4], k: r[3], name: r[6], date: r[0] });
    });
    var datasets = [];
    steps.forEach(function (points, step) {  /* Chart.js draws the first dataset last: the most kudos first */
      if (points) {
        datasets.unshift({ label: "start points", data: byX(points), pointRadius: 3.5, pointBorderWidth: 0,
                           backgroundColor: heat(step / (HEAT_STEPS - 1)) });
      }
    });
    return {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        parsing: false,
        maintainAspectRatio: true,
        aspectRatio: s.aspect,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (c) { return [c.raw.name || "(no name)", c.raw.date + " · " + c.raw.k + " kudos"]; } } }
        },
        scales: {
          x: { min: s.bounds[0], max: s.bounds[2], title: { display: true, text: "longitude" }, grid: { color: "#f0f2f5" } },
          y: { min: s.bounds[1], max: s.bounds[3], title: { display: true, text: "latitude" }, grid: { color: "#f0f2f5" } }
        }
      }
    };
  });

  /* 6. Training load: weekly distance and moving time with their 4-week averages. */
  draw("chart-load", function () {
    var l = DATA.load;
    if (!l.labels.length) { return null; }
    return {
      data: {
        labels: l.labels,
        datasets: [
          { type: "bar", label: "distance (km)", data: l.distance, backgroundColor: "#fc4c0255", yAxisID: "y", order: 3 },
          { type: "line", label: "distance, 4-week avg", data: l.distanceAvg, borderColor: "#fc4c02", pointRadius: 0, yAxisID: "y", order: 1 },
          { type: "line", label: "moving hours, 4-week avg", data: l.hoursAvg, borderColor: "#2b6cb0", pointRadius: 0, yAxisID: "h", order: 2 }
        ]
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { grid: { display: false }, ticks: { maxTicksLimit: 13 } },
          y: { title: { display: true, text: "km" }, beginAtZero: true },
          h: { position: "right", beginAtZero: true, grid: { display: false }, title: { display: true, text: "hours" } }
        }
      }
    };
  });

  /* 7. Average kudos by weekday and start hour. */
  draw("chart-weekday-hour", function () {
    var cells = DATA.weekdayHour.cells;
    if (!cells.length) { return null; }
    var max = Math.max.apply(null, cells.map(function (c) { return c[2] || 0; }).concat([1]));
    return {
      type: "matrix",
      data: { datasets: [{
        label: "average kudos",
        data: cells.map(function (c) { return { x: c[0], y: c[1], v: c[2], n: c[3] }; }),
        backgroundColor: function (c) { return c.raw ? ramp(0.15 + 0.85 * (c.raw.v || 0) / max, "#2b6cb0") : "#ebedf0"; },
        borderWidth: 0,
        width: function (c) { var a = c.chart.chartArea; return a ? Math.max(2, a.width / 24 - 2) : 8; },
        height: function (c) { var a = c.chart.chartArea; return a ? Math.max(2, a.height / 7 - 2) : 8; }
      }] },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: function (items) { return DAYS[items[0].raw.y - 1] + " " + items[0].raw.x + ":00"; },
                                  label: function (c) { return fmt(c.raw.v, 1) + " kudos on average over " + c.raw.n + " activities"; } } }
        },
        scales: {
          x: { type: "linear", min: -0.5, max: 23.5, offset: false, grid: { display: false },
               afterBuildTicks: fixedTicks(range(0, 23, 2)),
               ticks: { autoSkip: false, callback: function (v) { return v + ":00"; } } },
          y: { type: "linear", min: 0.5, max: 7.5, reverse: true, offset: false, grid: { display: false },
               afterBuildTicks: fixedTicks(range(1, 7)),
               ticks: { autoSkip: false, callback: function (v) { return DAYS[v - 1] || ""; } } }
        }
      }
    };
  });

  /* 8. Eddington number at each year's end, per sport group (km solid, miles dashed). */
  draw("chart-eddington", function () {
    var e = DATA.eddington;
    if (!e.years.length || !e.series.length) { return null; }
    var colours = { ride: "#2b6cb0", run: "#fc4c02" };
    return {
      type: "line",
      data: {
        labels: e.years.map(String),
        datasets: e.series.map(function (s) {
          return {
            label: s.group + " (" + s.unit + ")", data: s.data, borderColor: colours[s.group] || "#718096",
            backgroundColor: colours[s.group] || "#718096", borderDash: s.unit === "mi" ? [5, 4] : [],
            pointRadius: 3, spanGaps: true, stepped: false
          };
        })
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: { x: { grid: { display: false } }, y: { beginAtZero: true, title: { display: true, text: "E" } } }
      }
    };
  });

  /* 10. Fitness (CTL), fatigue (ATL) and form (TSB) per day, with the day's load as bars coloured by formula. */
  var FORMULA_COLOURS = ["#805ad5", "#c53030", "#d69e2e", "#718096"];
  draw("chart-fitness", function () {
    var f = DATA.fitness;
    if (!f.labels.length) { return null; }
    /* The day's load as one bar dataset per formula holding only that formula's days with a load
       (one colour each: Chart.js shares it between the bars instead of resolving every bar's own). */
    var loads = f.formulas.concat([null]).map(function (name, k) {
      var formula = name === null ? null : k, days = [];
      f.load.forEach(function (v, day) { if (f.formula[day] === formula && v) { days.push({ x: f.labels[day], y: v }); } });
      return { type: "bar", label: name === null ? "load" : "load (" + name.replace("_", " ") + ")", yAxisID: "load",
               grouped: false, backgroundColor: name === null ? "#cbd2d9" : FORMULA_COLOURS[k], data: days };
    }).filter(function (d) { return d.data.length; });
    return {
      data: {
        labels: f.labels,
        datasets: [
          { type: "line", label: "fitness (CTL)", data: f.ctl, borderColor: "#2b6cb0", backgroundColor: "#2b6cb0", pointRadius: 0, borderWidth: 2, yAxisID: "y" },
          { type: "line", label: "fatigue (ATL)", data: f.atl, borderColor: "#fc4c02", backgroundColor: "#fc4c02", pointRadius: 0, borderWidth: 1.5, yAxisID: "y" },
          { type: "line", label: "form (TSB)", data: f.tsb, borderColor: "#2f855a", backgroundColor: "#2f855a", pointRadius: 0, borderWidth: 1.5, borderDash: [4, 3], yAxisID: "y" }
        ].concat(loads)
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { grid: { display: false }, ticks: { maxTicksLimit: 12 } },
          y: { title: { display: true, text: "CTL / ATL / TSB" } },
          load: { position: "right", beginAtZero: true, grid: { display: false }, title: { display: true, text: "load" } }
        },
        plugins: { tooltip: { callbacks: { afterBody: function (items) {
          var k = f.formula[f.labels.indexOf(items[0].label)];
          return k === null ? "rest day" : "load by " + f.formulas[k].replace("_", " ");
        } } } }
      }
    };
  });

  function dayLabel(n) { return new Date(n * 86400000).toISOString().slice(0, 10); }
  function clock(seconds) {
    var s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
  }

  /* 11. Best efforts: the pace of every new record per standard distance, over time. */
  draw("chart-best-efforts", function () {
    var d = DATA.bestEfforts.distances;
    if (!d.length) { return null; }
    return {
      type: "line",
      data: {
        datasets: d.map(function (e, i) {
          return {
            label: e.name, borderColor: colour(i), backgroundColor: colour(i), stepped: "after", pointRadius: 3,
            data: e.points.map(function (p) { return { x: p[0], y: p[2], s: p[1] }; })
          };
        })
      },
      options: {
        parsing: true,
        scales: {
          x: { type: "linear", ticks: { callback: function (v) { return dayLabel(v); }, maxTicksLimit: 8 } },
          y: { reverse: true, title: { display: true, text: "min/km (lower is faster)" } }
        },
        plugins: { tooltip: { callbacks: { label: function (c) {
          return c.dataset.label + ": " + clock(c.raw.s) + " (" + fmt(c.raw.y, 2) + " min/km) on " + dayLabel(c.raw.x);
        } } } }
      }
    };
  });

  /* 12. Mean-maximal curves: power, heart rate and pace, all time / this year / 90 days. */
  function durationLabel(s) { return s < 60 ? s + " s" : s < 3600 ? s / 60 + " min" : s / 3600 + " h"; }
  var CURVES = {
    watts: { title: "power (W)", convert: function (v) { return v; }, digits: 0 },
    heartrate: { title: "heart rate (bpm)", convert: function (v) { return v; }, digits: 0 },
    speed: { title: "pace (min/km), runs", convert: function (v) { return v ? 1000 / (v * 60) : null; }, digits: 2, reverse: true }
  };
  Object.keys(CURVES).forEach(function (channel) {
    draw("chart-curve-" + channel, function () {
      var c = DATA.curves, spec = CURVES[channel], scopes = c.channels[channel];
      var names = { all: "all time", year: c.reference.slice(0, 4), recent: "last 90 days" };
      var datasets = ["all", "year", "recent"].map(function (scope, i) {
        return {
          label: names[scope], data: scopes[scope].map(function (v) { return v === null ? null : spec.convert(v); }),
          borderColor: ["#1f2933", "#fc4c02", "#2b6cb0"][i], backgroundColor: ["#1f2933", "#fc4c02", "#2b6cb0"][i],
          pointRadius: 2, spanGaps: false
        };
      }).filter(function (d) { return d.data.some(function (v) { return v !== null; }); });
      if (!datasets.length) { return null; }
      return {
        type: "line",
        data: { labels: c.durations.map(durationLabel), datasets: datasets },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: { x: { grid: { display: false } }, y: { reverse: !!spec.reverse, title: { display: true, text: spec.title } } },
          plugins: { tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + fmt(ctx.parsed.y, spec.digits); } } } }
        }
      };
    });
  });

  /* 13. Time in zones per week: stacked minutes, zone 1 at the bottom. */
  var ZONE_COLOURS = ["#a0aec0", "#2b6cb0", "#2f855a", "#d69e2e", "#fc4c02", "#c53030", "#702459"];
  ["heartrate", "power"].forEach(function (kind) {
    draw("chart-zones-" + kind, function () {
      var z = DATA.zones[kind];
      if (!z) { return null; }
      return {
        type: "bar",
        data: {
          labels: z.labels,
          datasets: z.zones.map(function (zone, i) {
            var unit = kind === "power" ? " W" : " bpm";
            return {
              label: "Z" + zone.zone + " " + zone.min + (zone.max === null ? "+" : "–" + zone.max) + unit,
              data: zone.minutes, backgroundColor: ZONE_COLOURS[i % ZONE_COLOURS.length], stack: "zones"
            };
          })
        },
        options: {
          interaction: { mode: "index", intersect: false },
          scales: { x: { stacked: true, grid: { display: false } }, y: { stacked: true, title: { display: true, text: "minutes" } } }
        }
      };
    });
  });

  /* 9. Heatmap of routes: a grid counted in Python (privacy radius already applied), no tiles
     unless the reader presses the button (then OpenStreetMap tiles are drawn under the grid). */
  var heat = null;
  (function () {
    var canvas = document.getElementById("heatmap");
    if (!canvas) { return; }
    var h = DATA.heatmap, k = 2, button = document.getElementById("heatmap-tiles");
    /* One pass: each counted cell's colour written into a grid-sized image (log scale: light at
       the busiest cells), then scaled up k times without smoothing over the dark background. */
    function paint(withTiles) {
      var ctx = canvas.getContext("2d"), max = Math.max(2, h.max), drawn = 0, cell = 0, scale = 1 / Math.log(max + 1);
      var grid = document.createElement("canvas"), image;
      grid.width = h.width;
      grid.height = h.height;
      image = grid.getContext("2d").createImageData(h.width, h.height);
      var px = image.data;
      for (var i = 0; i < h.cells.length; i += 2) {
        cell += h.cells[i];
        var t = Math.log(h.cells[i + 1] + 1) * scale, o = cell * 4;
        if (t < 0.5) {
          px[o] = 252; px[o + 1] = 76; px[o + 2] = 2; px[o + 3] = Math.round(255 * (0.45 + t));
        } else {
          px[o] = 255; px[o + 1] = Math.round(76 + 340 * (t - 0.5)); px[o + 2] = Math.round(2 + 300 * (t - 0.5)); px[o + 3] = 255;
        }
        drawn++;
      }
      grid.getContext("2d").putImageData(image, 0, 0);
      canvas.width = h.width * k;
      canvas.height = h.height * k;
      if (!withTiles) {
        ctx.fillStyle = "#0b1622";
        ctx.fillRect(0, 0, canvas.width, canvas.height);
      }
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(grid, 0, 0, canvas.width, canvas.height);
      return drawn;
    }
    /* Web Mercator tiles covering the grid's bounds, each drawn behind the cells where it falls. */
    function tiles() {
      var b = h.bounds, w = b[2] - b[0], ctx = canvas.getContext("2d");
      var zoom = Math.max(1, Math.min(17, Math.floor(Math.log(360 * canvas.width / (256 * w)) / Math.LN2)));
      var n = Math.pow(2, zoom);
      function tx(lng) { return Math.floor((lng + 180) / 360 * n); }
      function ty(lat) { var r = lat * Math.PI / 180; return Math.floor((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * n); }
      function lat(y) { var m = Math.PI - 2 * Math.PI * y / n; return 180 / Math.PI * Math.atan(0.5 * (Math.exp(m) - Math.exp(-m))); }
      function px(lng) { return (lng - b[0]) / w * canvas.width; }
      function py(la) { return (b[3] - la) / (b[3] - b[1]) * canvas.height; }
      ctx.globalCompositeOperation = "destination-over";
      for (var x = tx(b[0]); x <= tx(b[2]); x++) {
        for (var y = ty(b[3]); y <= ty(b[1]); y++) {
          (function (x, y) {
            var img = new Image();
            img.onload = function () {
              var left = px(x / n * 360 - 180), right = px((x + 1) / n * 360 - 180);
              var top = py(lat(y)), bottom = py(lat(y + 1));
              ctx.drawImage(img, left, top, right - left, bottom - top);
            };
            img.src = TILES + "/" + zoom + "/" + x + "/" + y + ".png";
          })(x, y);
        }
      }
    }
    var started = performance.now();
    try {
      if (!h.cells.length) {
        canvas.parentNode.outerHTML = '<p class="empty">No routes to draw</p>';
        if (button) { button.parentNode.remove(); }
        return;
      }
      heat = { cells: paint(false), tracks: h.tracks, fromStreams: h.fromStreams };
      if (button) {
        button.addEventListener("click", function () {
          paint(true);
          tiles();
          button.disabled = true;
          document.getElementById("heatmap-attribution").textContent = "Map tiles © OpenStreetMap contributors";
        });
      }
    } catch (err) {
      console.error("heatmap failed: " + err);
      canvas.parentNode.innerHTML = '<p class="empty">The heatmap could not be drawn.</p>';
    } finally {
      timed("heatmap", started);
    }
  })();

  window.stravaDashboard = {
    charts: charts.map(function (c) {
      return { id: c.canvas.id, type: c.config.type, points: c.data.datasets.reduce(function (n, d) { return n + d.data.length; }, 0) };
    }),
    expected: EXPECTED,
    heatmap: heat,
    drawnMs: Math.round(performance.now()),
    scriptStartMs: Math.round(STARTED),
    sections: SECTIONS,
    paintedMs: null
  };
  performance.mark("dashboard-drawn");
  /* The second animation frame after the drawing starts once the first frame holding it is painted. */
  requestAnimationFrame(function () {
    requestAnimationFrame(function () {
      window.stravaDashboard.paintedMs = Math.round(performance.now());
      performance.mark("dashboard-painted");
    });
  });
  document.body.setAttribute("data-charts-rendered", String(charts.length));
})();
