/* Interactive customer map of the segment report. Plain JS, no network, no innerHTML of data:
   everything customer-supplied reaches the page through textContent only. */
(function () {
  "use strict";
  var source = document.getElementById("report-data");
  var canvas = document.getElementById("map-canvas");
  var tip = document.getElementById("map-tip");
  var legend = document.getElementById("map-legend");
  if (!source || !canvas || !canvas.getContext) { return; }
  var data = JSON.parse(source.textContent);
  var map = data.map || { x: [], y: [], s: [], u: [], segments: [] };
  var n = map.x.length;
  var active = -1;
  var px = new Float32Array(n);
  var py = new Float32Array(n);
  var grid = {};
  var CELL = 14;
  var PAD = 14;

  function radius() {
    return n < 2000 ? 3.2 : n < 8000 ? 2.4 : 1.7;
  }

  function layout(width, height) {
    grid = {};
    for (var i = 0; i < n; i++) {
      px[i] = PAD + map.x[i] * (width - 2 * PAD);
      py[i] = PAD + (1 - map.y[i]) * (height - 2 * PAD);
      var key = Math.floor(px[i] / CELL) + ":" + Math.floor(py[i] / CELL);
      (grid[key] || (grid[key] = [])).push(i);
    }
  }

  function draw() {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth;
    var height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    layout(width, height);
    var r = radius();
    var drawn = 0;
    function dots(pass) {
      for (var i = 0; i < n; i++) {
        var s = map.s[i];
        var on = active < 0 || s === active;
        if ((pass === 0) === on && active >= 0) { continue; }
        ctx.globalAlpha = on ? 0.78 : 0.12;
        ctx.fillStyle = on ? map.segments[s].color : "#9ca3af";
        ctx.beginPath();
        ctx.arc(px[i], py[i], on && active >= 0 ? r + 0.6 : r, 0, 2 * Math.PI);
        ctx.fill();
        drawn++;
      }
    }
    if (active >= 0) { dots(0); }
    dots(1);
    ctx.globalAlpha = 1;
    canvas.setAttribute("data-points", String(drawn));
  }

  function nearest(x, y) {
    var best = -1;
    var bestD = 64;
    var cx = Math.floor(x / CELL);
    var cy = Math.floor(y / CELL);
    for (var dx = -1; dx <= 1; dx++) {
      for (var dy = -1; dy <= 1; dy++) {
        var cell = grid[(cx + dx) + ":" + (cy + dy)];
        if (!cell) { continue; }
        for (var k = 0; k < cell.length; k++) {
          var i = cell[k];
          if (active >= 0 && map.s[i] !== active) { continue; }
          var d = (px[i] - x) * (px[i] - x) + (py[i] - y) * (py[i] - y);
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  function showTip(i, x, y) {
    while (tip.firstChild) { tip.removeChild(tip.firstChild); }
    var who = document.createElement("strong");
    who.textContent = map.u[i];
    var seg = document.createElement("span");
    seg.className = "tip-seg";
    var dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = map.segments[map.s[i]].color;
    seg.appendChild(dot);
    seg.appendChild(document.createTextNode(map.segments[map.s[i]].name));
    tip.appendChild(who);
    tip.appendChild(seg);
    tip.hidden = false;
    var left = x + 14;
    var box = canvas.clientWidth;
    if (left + tip.offsetWidth > box) { left = Math.max(0, x - 14 - tip.offsetWidth); }
    tip.style.left = left + "px";
    tip.style.top = Math.max(0, y - tip.offsetHeight - 10) + "px";
  }

  canvas.addEventListener("mousemove", function (ev) {
    var rect = canvas.getBoundingClientRect();
    var x = ev.clientX - rect.left;
    var y = ev.clientY - rect.top;
    var i = nearest(x, y);
    if (i < 0) { tip.hidden = true; return; }
    showTip(i, x, y);
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });

  if (legend) {
    var buttons = legend.querySelectorAll(".legend-item");
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        var index = Number(button.getAttribute("data-index"));
        active = active === index ? -1 : index;
        Array.prototype.forEach.call(buttons, function (b) {
          b.classList.toggle("active", Number(b.getAttribute("data-index")) === active);
        });
        legend.classList.toggle("has-active", active >= 0);
        draw();
      });
    });
  }

  var pending = 0;
  window.addEventListener("resize", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(draw, 120);
  });
  draw();
})();
