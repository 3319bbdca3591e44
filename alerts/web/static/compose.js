// Drawing a polygon or a circle on the compose map; the result goes into the form's text fields
// (which can also be typed), as "lat,lon lat,lon ..." and "lat,lon radius_km".
"use strict";
(function () {
  var svg = document.querySelector("#draw-map svg.map");
  if (!svg) { return; }
  var layer = svg.querySelector("g.drawing");
  var polygonField = document.getElementById("polygon-field");
  var circleField = document.getElementById("circle-field");
  var hint = document.getElementById("draw-hint");
  var lonMin = parseFloat(svg.dataset.lonMin), latMax = parseFloat(svg.dataset.latMax);
  var kx = parseFloat(svg.dataset.kx), scale = parseFloat(svg.dataset.scale);
  var NS = "http://www.w3.org/2000/svg";
  var mode = "polygon", points = [], centre = null;

  function toXY(lat, lon) { return [(lon - lonMin) * kx, (latMax - lat) * scale]; }
  function toLatLon(x, y) { return [latMax - y / scale, lonMin + x / kx]; }
  function svgPoint(evt) {
    var pt = svg.createSVGPoint(); pt.x = evt.clientX; pt.y = evt.clientY;
    var p = pt.matrixTransform(svg.getScreenCTM().inverse()); return [p.x, p.y];
  }
  function el(name, attrs) { var e = document.createElementNS(NS, name); for (var k in attrs) { e.setAttribute(k, attrs[k]); } return e; }
  function fmt(v) { return v.toFixed(4); }

  function draw() {
    while (layer.firstChild) { layer.removeChild(layer.firstChild); }
    var poly = parsePolygon(polygonField.value);
    if (poly.length) {
      var xy = poly.map(function (p) { return toXY(p[0], p[1]).join(","); }).join(" ");
      layer.appendChild(el(poly.length > 2 && closed(poly) ? "polygon" : "polyline", {points: xy}));
      poly.forEach(function (p) { var c = toXY(p[0], p[1]); layer.appendChild(el("circle", {cx: c[0], cy: c[1], r: 3, "class": "vertex"})); });
    }
    var circ = parseCircle(circleField.value);
    if (circ) { var c = toXY(circ[0], circ[1]); layer.appendChild(el("circle", {cx: c[0], cy: c[1], r: Math.max(2, circ[2] / 111.2 * scale)})); }
  }
  function closed(poly) { var a = poly[0], b = poly[poly.length - 1]; return a[0] === b[0] && a[1] === b[1]; }
  function parsePolygon(text) {
    return text.trim().split(/\s+/).filter(Boolean).map(function (pair) { return pair.split(",").map(parseFloat); })
      .filter(function (p) { return p.length === 2 && !isNaN(p[0]) && !isNaN(p[1]); });
  }
  function parseCircle(text) {
    var m = text.trim().match(/^(-?[\d.]+),(-?[\d.]+)\s+([\d.]+)$/);
    return m ? [parseFloat(m[1]), parseFloat(m[2]), parseFloat(m[3])] : null;
  }

  var zonesField = document.querySelector("input[name=zones]");
  svg.addEventListener("click", function (evt) {
    if (mode === "zones") {
      var zone = evt.target.getAttribute && evt.target.getAttribute("data-zone");
      if (zone) {
        var items = zonesField.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        var at = items.indexOf(zone);
        if (at >= 0) { items.splice(at, 1); } else { items.push(zone); }
        zonesField.value = items.join(", ");
        markPicked();
      }
      return;
    }
    var p = svgPoint(evt), ll = toLatLon(p[0], p[1]);
    if (mode === "polygon") {
      var poly = parsePolygon(polygonField.value);
      if (poly.length && closed(poly) && poly.length > 3) { poly = []; }
      if (poly.length >= 3) {
        var first = toXY(poly[0][0], poly[0][1]);
        if (Math.hypot(first[0] - p[0], first[1] - p[1]) < 8) { poly.push(poly[0]); polygonField.value = poly.map(function (q) { return fmt(q[0]) + "," + fmt(q[1]); }).join(" "); draw(); hint.textContent = "Polygon closed."; return; }
      }
      poly.push(ll);
      polygonField.value = poly.map(function (q) { return fmt(q[0]) + "," + fmt(q[1]); }).join(" ");
    } else if (mode === "circle") {
      if (!centre) { centre = ll; circleField.value = fmt(ll[0]) + "," + fmt(ll[1]) + " 5"; hint.textContent = "Now click the edge of the circle."; }
      else {
        var dy = (ll[0] - centre[0]) * 111.2, dx = (ll[1] - centre[1]) * 111.2 * Math.cos(centre[0] * Math.PI / 180);
        circleField.value = fmt(centre[0]) + "," + fmt(centre[1]) + " " + Math.max(0.5, Math.hypot(dx, dy)).toFixed(1);
        centre = null; hint.textContent = "Circle set.";
      }
    }
    draw();
  });
  document.querySelectorAll(".draw-tools button").forEach(function (b) {
    b.addEventListener("click", function () {
      if (b.dataset.mode === "clear") { polygonField.value = ""; circleField.value = ""; centre = null; draw(); return; }
      mode = b.dataset.mode; centre = null;
      document.querySelectorAll(".draw-tools button").forEach(function (o) { o.classList.toggle("active", o === b); });
      hint.textContent = {polygon: "Click points on the map; click the first point to close.",
        circle: "Click the centre, then the edge.", zones: "Click a province to add or remove its land zone; sea zones from the list."}[mode];
    });
  });
  function markPicked() {
    var items = zonesField.value.split(",").map(function (s) { return s.trim(); });
    svg.querySelectorAll(".land path[data-zone]").forEach(function (path) {
      path.classList.toggle("picked", items.indexOf(path.getAttribute("data-zone")) >= 0);
    });
  }
  zonesField.addEventListener("input", markPicked);
  markPicked();
  polygonField.addEventListener("input", draw);
  circleField.addEventListener("input", draw);
  draw();
})();
