/* Carte de l'observatoire du foncier économique.
 *
 * Reads the data embedded as JSON in the element "observatoire-donnees" (inflated
 * first when the page compressed them: data-encodage="deflate-base64"), draws the
 * background made from the observatory's own layers (communes, roads, buildings)
 * and the thematic layers with Leaflet (canvas renderers) and builds popups,
 * tooltips, legend, search, ZAE selector and print button.
 *
 * Security: every attribute value is rendered with textContent or as the value of
 * a DOM property; no data ever goes through innerHTML, and the only strings given
 * to Leaflet APIs that use innerHTML (layer control names, attribution) are escaped
 * with escapeHtml first.
 */
"use strict";

function observatoireCarte(map, dataElementId) {
  var node = document.getElementById(dataElementId);
  if (node.getAttribute("data-encodage") !== "deflate-base64") {
    return observatoireDessin(map, JSON.parse(node.textContent));
  }
  function failure(text) {
    var box = document.createElement("div");
    box.className = "obs-erreur";
    box.textContent = text;
    map.getContainer().appendChild(box);
  }
  if (typeof DecompressionStream === "undefined") {
    failure("Ce navigateur ne sait pas lire cette carte (données compressées) : ouvrez-la " +
            "avec Firefox 113, Chrome ou Edge 80, Safari 16.4 ou plus récent.");
    return null;
  }
  var binary = atob(node.textContent.trim());
  var bytes = new Uint8Array(binary.length);
  for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
  binary = null;
  new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate")))
    .text()
    .then(function (text) { observatoireDessin(map, JSON.parse(text)); })
    .catch(function (e) { failure("Données de la carte illisibles : " + e); });
  return null;
}

function observatoireDessin(map, data) {
  var meta = data.meta;
  var palettes = meta.palettes;
  var NBSP = "\u00a0";
  // Height limit and scrolling are in the style sheet (.obs-popup), not Leaflet's maxHeight.
  var POPUP_OPTIONS = {maxWidth: 380, autoPanPadding: [40, 40]};
  var home = meta.emprise;
  function showOverview(options) {
    map.fitBounds([[home[1], home[0]], [home[3], home[2]]], options);
  }
  // The view is set before the layers are added: they are projected once.
  showOverview({animate: false});

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  var nf = [0, 1, 2].map(function (d) {
    return new Intl.NumberFormat("fr-FR", {minimumFractionDigits: 0, maximumFractionDigits: d});
  });

  function formatValue(kind, v) {
    if (v === null || v === undefined || v === "") { return null; }
    switch (kind) {
      case "int": return nf[0].format(v);
      case "num1": return nf[1].format(v);
      case "num2": return nf[2].format(v);
      case "score": return nf[1].format(v) + NBSP + "/" + NBSP + "100";
      case "pts": return nf[1].format(v) + NBSP + "pts";
      case "pct": return nf[0].format(v * 100) + NBSP + "%";
      case "m": return nf[0].format(v) + NBSP + "m";
      case "m2":
        return v >= 10000 ? nf[2].format(v / 10000) + NBSP + "ha" : nf[0].format(v) + NBSP + "m²";
      case "bool": return v ? "oui" : "non";
      case "list": return String(v).split("|").join(", ");
      case "idu": return String(v);
      default: return String(v);
    }
  }

  /* ---- decoding of the compact layer format (see observatoire/publish/carte.py) ---- */

  function decodeColumn(col, n) {
    if (n === 0) { return []; }
    if (col.t === "s") {
      return col.i.map(function (k) { return k < 0 ? null : col.d[k]; });
    }
    if (col.t === "l") { return col.v; }
    if (col.t === "f") {
      return col.v.split(",").map(function (row) {
        return row === "" ? null : row.split(".").map(function (k) { return col.d[+k]; }).join("");
      });
    }
    if (col.t === "p") {
      var tails = col.v.split(",");
      return col.i.map(function (k, j) { return k < 0 ? null : col.d[k] + tails[j]; });
    }
    var f = Math.pow(10, col.k);
    return col.v.split(",").map(function (x) { return x === "" ? null : Number(x) / f; });
  }

  function decodeLayer(layer) {
    var n = layer.n;
    // Columns are decoded on first use (most only when a popup opens): faster start.
    var props = {};
    Object.keys(layer.props).forEach(function (name) {
      var cache = null;
      Object.defineProperty(props, name, {
        enumerable: true,
        get: function () {
          if (cache === null) { cache = decodeColumn(layer.props[name], n); }
          return cache;
        }
      });
    });
    return {props: props, shapes: decodeShapes(layer.geom, n)};
  }

  function decodeShapes(g, n) {
    var c = g.c, scale = g.s;
    var x = 0, y = 0, k = 0;
    var shapes = new Array(n);
    function count(list, i) { return typeof list === "number" ? list : list[i]; }
    if (g.type === "line") {
      var li = 0;
      for (var fl = 0; fl < n; fl++) {
        var lines = [];
        for (var m = 0, nl = count(g.f, fl); m < nl; m++, li++) {
          var line = new Array(g.r[li]);
          for (var w = 0; w < g.r[li]; w++) {
            x += c[k]; y += c[k + 1]; k += 2;
            line[w] = new L.LatLng(y / scale, x / scale);
          }
          lines.push(line);
        }
        shapes[fl] = lines.length ? lines : null;
      }
    } else if (g.type === "point") {
      for (var i = 0; i < n; i++) {
        if (!g.f[i]) { shapes[i] = null; continue; }
        x += c[k]; y += c[k + 1]; k += 2;
        shapes[i] = L.latLng(y / scale, x / scale);
      }
    } else {
      var ri = 0, pi = 0;
      for (var fi = 0; fi < n; fi++) {
        var polys = [];
        for (var p = 0, np = count(g.f, fi); p < np; p++, pi++) {
          var rings = [];
          for (var r = 0, nr = count(g.p, pi); r < nr; r++, ri++) {
            var ring = new Array(g.r[ri]);
            for (var v = 0; v < g.r[ri]; v++) {
              x += c[k]; y += c[k + 1]; k += 2;
              ring[v] = new L.LatLng(y / scale, x / scale);
            }
            rings.push(ring);
          }
          polys.push(rings);
        }
        shapes[fi] = polys.length ? polys : null;
      }
    }
    return shapes;
  }

  /* ---- styles ---- */

  function categoryColour(palette, value, fallback) {
    if (value !== null && Object.prototype.hasOwnProperty.call(palette, value)) {
      return palette[value][0];
    }
    return fallback;
  }

  function vacancyColour(v) {
    if (v === null || v === undefined) { return palettes.vacance_inconnue; }
    for (var i = 0; i < palettes.vacance.length; i++) {
      if (v < palettes.vacance[i][0] || i === palettes.vacance.length - 1) {
        return palettes.vacance[i][1];
      }
    }
    return palettes.vacance_inconnue;
  }

  var currentProfile = meta.profils.length ? meta.profils[0].nom : null;
  // Parcel outlines only from this zoom level: below, thousands of outlines hide the colours.
  var OUTLINE_ZOOM = 15;
  var parcelOutlines = data.layers.filter(function (l) {
    return l.id === "parcelles" && l.n >= 2000;
  }).length === 0;

  function profileOf(name) {
    for (var i = 0; i < meta.profils.length; i++) {
      if (meta.profils[i].nom === name) { return meta.profils[i]; }
    }
    return null;
  }

  /* One function per layer gives the style of a feature from its value: the map and
     the legend both call it, so that the legend shows the symbols drawn. */

  function parcelStyle(cls) {
    var fill = cls === null ? palettes.exclue : categoryColour(palettes.classes, cls, palettes.exclue);
    return {color: "#4d4d4d", weight: 0.4, stroke: parcelOutlines, fillColor: fill,
            fillOpacity: 0.7};
  }

  function gisementStyle() {
    return {color: palettes.gisement, weight: 3, fillColor: palettes.gisement, fillOpacity: 0.08,
            dashArray: "6 4"};
  }

  // The vacancy colour draws the outline and a light veil, so that the score
  // classes of the parcels underneath stay readable.
  function zaeStyle(taux) {
    var known = taux !== null && taux !== undefined;
    var colour = vacancyColour(known ? taux : null);
    return {color: known ? colour : palettes.zae, weight: 4, fillColor: colour,
            fillOpacity: known ? 0.12 : 0.05};
  }

  function unitStyle(occupation) {
    return {color: "#252525", weight: 0.6,
            fillColor: categoryColour(palettes.occupation, occupation, "#f0f0f0"), fillOpacity: 0.75};
  }

  function zoneStyle(typezone) {
    return {color: "#8c6d31", weight: 0.8,
            fillColor: categoryColour(palettes.zonage, typezone, "#dddddd"), fillOpacity: 0.25};
  }

  function fricheStyle(id, statut) {
    var colour = categoryColour(palettes.friches, statut, palettes.friche_autre);
    switch (id) {
      case "friches":
        return {radius: 7, color: "#000000", weight: 1, fillColor: colour, fillOpacity: 0.95};
      case "friches_surfaces":
        return {color: colour, weight: 2, fillColor: colour, fillOpacity: 0.25};
      // Friches nearby (outside the territory): the same colours, paler and dashed.
      case "friches_proximite":
        return {radius: 5, color: "#636363", weight: 1, dashArray: "2 2", fillColor: colour,
                fillOpacity: 0.45};
      default:  // friches_surfaces_proximite
        return {color: colour, weight: 1, dashArray: "4 3", fillColor: colour, fillOpacity: 0.1};
    }
  }

  function evolutionStyle(kind) {
    var colour = categoryColour(palettes.evolution || {}, kind, "#555555");
    return {color: colour, weight: 1.5, fillColor: colour, fillOpacity: 0.6};
  }

  function value(props, column, i) {
    return props[column] ? props[column][i] : null;
  }

  function styleFor(layer, props, i) {
    switch (layer.id) {
      case "parcelles": {
        var prof = profileOf(currentProfile);
        if (!prof) {
          return {color: "#636363", weight: 0.5, fillColor: "#ffffff", fillOpacity: 0.05};
        }
        return parcelStyle(value(props, prof.colonnes.classe, i));
      }
      case "gisements": return gisementStyle();
      case "zae": return zaeStyle(value(props, "taux_vacance", i));
      case "zae_unites": return unitStyle(value(props, "occupation", i));
      case "friches":
      case "friches_surfaces":
      case "friches_proximite":
      case "friches_surfaces_proximite":
        return fricheStyle(layer.id, value(props, "site_statut", i));
      case "zonage": return zoneStyle(value(props, "typezone", i));
      case "evolution_parcelles": return evolutionStyle(value(props, "evolution", i));
      default:
        return {color: "#555555", weight: 1, fillOpacity: 0.1};
    }
  }

  /* ---- popups and tooltips (DOM nodes only) ---- */

  function addRow(table, label, text, link) {
    if (text === null || text === undefined) { return; }
    var tr = el("tr");
    tr.appendChild(el("th", null, label));
    var td = el("td");
    if (link) {
      // Only web addresses made by the page's data (https), opened in a new tab.
      var a = el("a", null, text);
      a.href = link;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      td.appendChild(a);
    } else {
      td.textContent = String(text);
    }
    tr.appendChild(td);
    table.appendChild(tr);
  }

  // A coded value by its French label (layer.valeurs), else as it is.
  function shown(layer, column, v) {
    var labels = layer.valeurs && layer.valeurs[column];
    if (labels && v !== null && Object.prototype.hasOwnProperty.call(labels, v)) {
      return labels[v];
    }
    return v;
  }

  function profileSection(root, prof, props, i) {
    var cols = prof.colonnes;
    var box = el("div", "obs-profil");
    box.appendChild(el("h4", null, "Profil « " + prof.libelle + " »"));
    var excluded = cols.exclu && props[cols.exclu] ? props[cols.exclu][i] : null;
    var score = cols.score && props[cols.score] ? props[cols.score][i] : null;
    var table = el("table");
    if (excluded || (score === null && cols.score && props[cols.score])) {
      addRow(table, "Score", "exclue");
      var why = cols.exclusions && props[cols.exclusions] ? props[cols.exclusions][i] : null;
      addRow(table, "Motifs", why);
    } else {
      addRow(table, "Score", formatValue("score", score));
      addRow(table, "Classe", cols.classe && props[cols.classe] ? props[cols.classe][i] : null);
    }
    addRow(table, "Fiabilité", cols.fiabilite && props[cols.fiabilite]
      ? formatValue("pct", props[cols.fiabilite][i]) : null);
    box.appendChild(table);
    var details = prof.criteres.filter(function (c) {
      return props[c.colonne] && props[c.colonne][i] !== null;
    });
    if (details.length) {
      box.appendChild(el("div", "obs-soustitre", "Détail du score par critère"));
      var t2 = el("table", "obs-criteres");
      details.forEach(function (c) {
        addRow(t2, c.libelle, formatValue("pts", props[c.colonne][i]));
      });
      box.appendChild(t2);
    }
    var reasons = cols.raisons && props[cols.raisons] ? props[cols.raisons][i] : null;
    if (reasons) {
      box.appendChild(el("div", "obs-soustitre", "Points forts et points faibles"));
      box.appendChild(el("p", "obs-raisons", reasons));
    }
    root.appendChild(box);
  }

  function popupContent(layer, decoded, i) {
    var props = decoded.props;
    var root = el("div", "obs-popup");
    var titleValue = layer.titre && props[layer.titre] ? props[layer.titre][i] : null;
    root.appendChild(el("h3", null, layer.etiquette + (titleValue !== null ? " " + titleValue : "")));
    var table = el("table");
    layer.champs.forEach(function (f) {
      var values = props[f[0]];
      if (!values) { return; }
      if (f[2] === "lien") {
        var url = values[i];
        if (url && /^https:\/\//.test(url)) { addRow(table, f[1], "Voir la fiche du site", url); }
        return;
      }
      addRow(table, f[1], formatValue(f[2], shown(layer, f[0], values[i])));
    });
    root.appendChild(table);
    if (layer.id === "parcelles") {
      meta.profils.forEach(function (prof) { profileSection(root, prof, props, i); });
    }
    return root;
  }

  function tooltipContent(layer, decoded, i) {
    var props = decoded.props;
    var parts = [];
    layer.infobulle.forEach(function (f) {
      var values = props[f[0]];
      if (!values) { return; }
      var text = formatValue(f[2], shown(layer, f[0], values[i]));
      if (text !== null) { parts.push(f[1] ? f[1] + NBSP + ": " + text : text); }
    });
    if (layer.id === "parcelles") {
      var prof = profileOf(currentProfile);
      if (prof && props[prof.colonnes.classe]) {
        var cls = props[prof.colonnes.classe][i];
        parts.push(cls === null ? "exclue (" + prof.libelle + ")" : "classe " + cls + " (" + prof.libelle + ")");
      }
    }
    return el("div", "obs-infobulle", parts.join(" — "));
  }

  /* ---- layers ---- */

  var groups = {};
  var decodedLayers = {};
  var featureLayers = {};
  var stats = {};
  var overlays = [];

  data.layers.forEach(function (layer) {
    var decoded = decodeLayer(layer);
    decodedLayers[layer.id] = decoded;
    var group = L.featureGroup();
    var items = new Array(layer.n);
    var drawn = 0;
    for (var i = 0; i < layer.n; i++) {
      var shape = decoded.shapes[i];
      if (shape === null) { continue; }
      var style = styleFor(layer, decoded.props, i);
      var item = layer.geom.type === "point" ? L.circleMarker(shape, style) : L.polygon(shape, style);
      item.obsIndex = i;
      items[i] = item;
      group.addLayer(item);
      drawn += 1;
    }
    group.bindPopup(function (item) { return popupContent(layer, decoded, item.obsIndex); },
                    POPUP_OPTIONS);
    group.bindTooltip(function (item) { return tooltipContent(layer, decoded, item.obsIndex); },
                      {sticky: true, direction: "top", opacity: 0.95});
    groups[layer.id] = group;
    featureLayers[layer.id] = items;
    stats[layer.id] = drawn;
    overlays.push([layer, group]);
    if (layer.visible) { group.addTo(map); }
  });

  function restyleParcels() {
    var layer = data.layers.filter(function (l) { return l.id === "parcelles"; })[0];
    if (!layer) { return; }
    var decoded = decodedLayers.parcelles;
    featureLayers.parcelles.forEach(function (item, i) {
      if (item) { item.setStyle(styleFor(layer, decoded.props, i)); }
    });
  }

  map.on("zoomend", function () {
    var wanted = map.getZoom() >= OUTLINE_ZOOM || stats.parcelles < 2000;
    if (wanted !== parcelOutlines) {
      parcelOutlines = wanted;
      restyleParcels();
    }
  });

  function bringPointsToFront() {
    ["gisements", "friches_proximite", "friches"].forEach(function (id) {
      if (groups[id] && map.hasLayer(groups[id])) { groups[id].bringToFront(); }
    });
  }
  map.on("overlayadd", bringPointsToFront);
  bringPointsToFront();

  /* ---- background drawn from the observatory's own layers (offline) ---- */

  // Levels of the background (see observatoire/publish/fond.py): each drawn between
  // its zooms; the tiled ones (local roads, buildings) only in the cells around the
  // view. Shapes are decoded and Leaflet layers made on first need: the page opens
  // without them.
  var fondData = data.fond || null;
  var fond = L.layerGroup();
  var fondLevels = [];
  var fondLabels = L.layerGroup();
  var fondNames = [];
  // Panes between the tiles (200) and the thematic layers (400), bottom to top.
  var FOND_PANES = {batiment: ["obs-fond-batiments", 350], commune: ["obs-fond-communes", 370]};
  var fondRenderers = {};
  function fondRenderer(style) {
    var pane = FOND_PANES[style] || ["obs-fond-routes", 360];
    if (!fondRenderers[pane[0]]) {
      map.createPane(pane[0]).style.zIndex = pane[1];
      fondRenderers[pane[0]] = L.canvas({pane: pane[0], padding: 0.3});
    }
    return fondRenderers[pane[0]];
  }

  function fondStyle(level) {
    var s = fondData.styles[level.style];
    return {color: s.color, weight: s.weight, dashArray: s.dashArray || null,
            fill: s.fill === undefined ? level.geom.type === "polygon" : s.fill,
            fillColor: s.fillColor || s.color, fillOpacity: s.fillOpacity || 0,
            interactive: false, renderer: fondRenderer(level.style)};
  }

  if (fondData) {
    fondData.niveaux.forEach(function (level) {
      fondLevels.push({level: level, shapes: null, groups: {}, style: fondStyle(level)});
    });
    fondData.etiquettes.forEach(function (e) {
      var tip = L.tooltip({permanent: true, direction: "center", className: "obs-commune-nom",
                           interactive: false});
      tip.setLatLng([e[2], e[1]]);
      tip.setContent(el("span", null, e[0]));
      tip.obsWidth = e[3];
      fondNames.push(tip);
    });
  }
  // A commune's name shows once the commune is this wide on screen (pixels): the names
  // of small communes would otherwise cover each other in the overview.
  var LABEL_WIDTH = 120;

  function fondGroup(entry, key, from, to) {
    if (!entry.groups[key]) {
      var level = entry.level;
      if (!entry.shapes) { entry.shapes = decodeShapes(level.geom, level.n); }
      var group = L.layerGroup();
      for (var i = from; i < to; i++) {
        var shape = entry.shapes[i];
        if (shape === null) { continue; }
        group.addLayer(level.geom.type === "polygon" ? L.polygon(shape, entry.style)
                                                     : L.polyline(shape, entry.style));
      }
      entry.groups[key] = group;
    }
    return entry.groups[key];
  }

  function syncFond() {
    var on = map.hasLayer(fond), z = map.getZoom();
    var view = map.getBounds().pad(0.5);
    var added = false;
    fondLevels.forEach(function (entry) {
      var level = entry.level, wanted = {};
      if (on && z >= level.zmin && z <= level.zmax) {
        if (level.cellules) {
          // Features are filed by the cell of their south-west corner: a cell's
          // features reach at most one cell beyond it to the north-east.
          var c = level.cellules.c, size = level.cellules.taille, start = 0;
          for (var k = 0; k < c.length; k += 3) {
            var cell = L.latLngBounds([c[k + 1] * size, c[k] * size],
                                      [(c[k + 1] + 2) * size, (c[k] + 2) * size]);
            if (view.intersects(cell)) { wanted[k] = [start, start + c[k + 2]]; }
            start += c[k + 2];
          }
        } else {
          wanted.tout = [0, level.n];
        }
      }
      Object.keys(entry.groups).forEach(function (key) {
        if (!wanted[key] && fond.hasLayer(entry.groups[key])) { fond.removeLayer(entry.groups[key]); }
      });
      Object.keys(wanted).forEach(function (key) {
        var group = fondGroup(entry, key, wanted[key][0], wanted[key][1]);
        if (!fond.hasLayer(group)) { fond.addLayer(group); added = true; }
      });
    });
    if (added) {
      // Levels share a canvas per pane: the later levels (more important roads) on top.
      fondLevels.forEach(function (entry) {
        Object.keys(entry.groups).forEach(function (key) {
          if (fond.hasLayer(entry.groups[key])) {
            entry.groups[key].eachLayer(function (l) { l.bringToFront(); });
          }
        });
      });
    }
    if (on !== fond.hasLayer(fondLabels)) {
      if (on) { fond.addLayer(fondLabels); } else { fond.removeLayer(fondLabels); }
    }
    var degree = 256 * Math.pow(2, z) / 360;  // pixels per degree of longitude
    fondNames.forEach(function (tip) {
      var wanted = on && tip.obsWidth * degree >= LABEL_WIDTH;
      if (wanted !== fondLabels.hasLayer(tip)) {
        if (wanted) { fondLabels.addLayer(tip); } else { fondLabels.removeLayer(tip); }
      }
    });
  }
  map.on("zoomend moveend baselayerchange", syncFond);

  /* ---- base layers: the observatory's background, OpenStreetMap when online, none ---- */

  var noBase = L.layerGroup();
  var osm = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19,
    attribution: "© contributeurs OpenStreetMap"
  });
  var bases = {};
  if (fondData) { bases[escapeHtml("Fond de l'observatoire (communes, routes, bâtiments)")] = fond; }
  bases[escapeHtml("Fond OpenStreetMap (en ligne)")] = osm;
  bases[escapeHtml("Sans fond de carte")] = noBase;
  // The observatory's background reads without network (an e-mailed file): it is the
  // one shown at first; without it, OpenStreetMap when online.
  var offlineBase = fondData ? fond : noBase;
  (fondData || navigator.onLine === false ? offlineBase : osm).addTo(map);
  syncFond();
  // Offline: after a few failed tiles and none loaded, stop asking for the basemap.
  var tileErrors = 0, tilesLoaded = 0;
  osm.on("tileload", function () { tilesLoaded += 1; });
  osm.on("tileerror", function () {
    tileErrors += 1;
    if (tileErrors >= 4 && tilesLoaded === 0 && map.hasLayer(osm)) {
      map.removeLayer(osm);
      offlineBase.addTo(map);
      syncFond();
      map.attributionControl.addAttribution(escapeHtml("fond de carte indisponible (hors ligne)"));
    }
  });

  var overlayControl = {};
  overlays.forEach(function (pair) {
    overlayControl[escapeHtml(pair[0].libelle + " (" + nf[0].format(stats[pair[0].id]) + ")")] = pair[1];
  });
  L.control.layers(bases, overlayControl, {collapsed: window.innerWidth < 900, position: "topright"})
    .addTo(map);
  L.control.scale({imperial: false, metric: true, position: "bottomleft"}).addTo(map);
  map.attributionControl.setPrefix(escapeHtml("Leaflet"));

  /* ---- credits: producer and date of the data of each source (Licence Ouverte 2.0) ---- */

  function frenchDate(iso) {
    var parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    return parts ? parts[3] + "/" + parts[2] + "/" + parts[1] : "date inconnue";
  }
  var credits = (meta.sources || []).map(function (s) {
    return s.producteur + ", données du " + frenchDate(s.date);
  });
  if (credits.length) {
    var creditText = "Sources : " + credits.join(" · ");
    map.attributionControl.addAttribution(escapeHtml(creditText));
    map.attributionControl.getContainer().title = creditText;  // plain text
  }

  /* ---- header (title) ---- */

  var header = L.control({position: "topleft"});
  header.onAdd = function () {
    var box = el("div", "obs-entete leaflet-control");
    box.appendChild(el("div", "obs-titre", meta.titre));
    box.appendChild(el("div", "obs-soustitre", meta.sous_titre));
    L.DomEvent.disableClickPropagation(box);
    return box;
  };
  header.addTo(map);

  /* ---- legend ---- */

  var SVG_NS = "http://www.w3.org/2000/svg";

  // The swatch of a legend entry: the style given to Leaflet for the features it
  // stands for, drawn in SVG (stroke, dashes, fill and its opacity).
  function legendSwatch(style, kind) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "obs-pastille");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "16");
    var shape;
    if (kind === "point") {
      shape = document.createElementNS(SVG_NS, "circle");
      shape.setAttribute("cx", "13");
      shape.setAttribute("cy", "8");
      shape.setAttribute("r", String(Math.min(style.radius || 5, 7)));
    } else if (kind === "line") {
      shape = document.createElementNS(SVG_NS, "line");
      shape.setAttribute("x1", "1");
      shape.setAttribute("y1", "8");
      shape.setAttribute("x2", "25");
      shape.setAttribute("y2", "8");
    } else {
      shape = document.createElementNS(SVG_NS, "rect");
      shape.setAttribute("x", "2");
      shape.setAttribute("y", "2");
      shape.setAttribute("width", "22");
      shape.setAttribute("height", "12");
    }
    shape.setAttribute("stroke", style.stroke === false ? "none" : style.color);
    shape.setAttribute("stroke-width", String(style.weight));
    if (style.dashArray) { shape.setAttribute("stroke-dasharray", style.dashArray); }
    var filled = kind !== "line" && style.fill !== false;
    shape.setAttribute("fill", filled ? (style.fillColor || style.color) : "none");
    if (filled) {
      // Leaflet's default fill opacity is 0.2.
      shape.setAttribute("fill-opacity",
                         String(style.fillOpacity === undefined ? 0.2 : style.fillOpacity));
    }
    svg.appendChild(shape);
    return svg;
  }

  function legendItem(list, style, label, kind) {
    var li = el("li");
    li.appendChild(legendSwatch(style, kind || "polygon"));
    li.appendChild(el("span", null, label));
    list.appendChild(li);
  }

  var legendSections = {};
  var legend = L.control({position: "bottomright"});
  legend.onAdd = function () {
    var box = el("div", "obs-legende leaflet-control");
    box.appendChild(el("div", "obs-legende-titre", "Légende"));
    data.layers.forEach(function (layer) {
      var sec = el("div", "obs-legende-section");
      sec.setAttribute("data-couche", layer.id);
      var title = el("div", "obs-legende-couche", layer.libelle);
      sec.appendChild(title);
      var list = el("ul");
      if (layer.id === "parcelles") {
        var prof = profileOf(currentProfile);
        if (prof) {
          title.textContent = layer.libelle + " — score « " + prof.libelle + " »";
          // As drawn at close zoom (outlines from zoom 15 on for large territories).
          var outlined = parcelOutlines;
          parcelOutlines = true;
          Object.keys(palettes.classes).forEach(function (k) {
            legendItem(list, parcelStyle(k), palettes.classes[k][1]);
          });
          legendItem(list, parcelStyle(null), meta.libelle_exclue);
          parcelOutlines = outlined;
        } else {
          legendItem(list, styleFor(layer, {}, 0), "Parcelle (score non calculé)");
        }
      } else if (/^friches(_surfaces)?(_proximite)?$/.test(layer.id)) {
        Object.keys(palettes.friches).forEach(function (k) {
          legendItem(list, fricheStyle(layer.id, k), palettes.friches[k][1], layer.geom.type);
        });
      } else if (layer.id === "zae") {
        if (layer.props.taux_vacance) {
          palettes.vacance.forEach(function (c, i) {
            // The lowest rate of the class gives its style.
            legendItem(list, zaeStyle(i === 0 ? 0 : palettes.vacance[i - 1][0]), "Vacance " + c[2]);
          });
          legendItem(list, zaeStyle(null), "Vacance non calculée");
        } else {
          legendItem(list, zaeStyle(null), "Zone d'activités");
        }
      } else if (layer.id === "zae_unites") {
        Object.keys(palettes.occupation).forEach(function (k) {
          legendItem(list, unitStyle(k), palettes.occupation[k][1]);
        });
      } else if (layer.id === "zonage") {
        Object.keys(palettes.zonage).forEach(function (k) {
          legendItem(list, zoneStyle(k), palettes.zonage[k][1]);
        });
      } else if (layer.id === "gisements") {
        legendItem(list, gisementStyle(), "Gisement foncier (site candidat)");
      } else if (layer.id === "evolution_parcelles") {
        Object.keys(palettes.evolution).forEach(function (k) {
          legendItem(list, evolutionStyle(k), palettes.evolution[k][1]);
        });
      }
      sec.appendChild(list);
      legendSections[layer.id] = {section: sec, title: title, list: list, baseTitle: layer.libelle,
                                  layer: groups[layer.id]};
      sec.style.display = map.hasLayer(groups[layer.id]) ? "" : "none";
      box.appendChild(sec);
    });
    if (fondData) {
      // The background: one entry per kind of feature it holds, in its styles.
      var sec = el("div", "obs-legende-section");
      sec.setAttribute("data-couche", "fond");
      var title = el("div", "obs-legende-couche", "Fond de carte (données de l'observatoire)");
      sec.appendChild(title);
      var list = el("ul");
      var seen = {};
      ["commune", "autoroute", "principale", "secondaire", "locale", "batiment"].forEach(function (key) {
        fondLevels.forEach(function (entry) {
          if (entry.level.style === key && !seen[key]) {
            seen[key] = true;
            legendItem(list, entry.style, fondData.styles[key].libelle, entry.level.geom.type);
          }
        });
      });
      sec.appendChild(list);
      legendSections.fond = {section: sec, title: title, list: list, layer: fond};
      sec.style.display = map.hasLayer(fond) ? "" : "none";
      box.appendChild(sec);
    }
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    return box;
  };
  legend.addTo(map);

  function syncLegend() {
    Object.keys(legendSections).forEach(function (id) {
      legendSections[id].section.style.display = map.hasLayer(legendSections[id].layer) ? "" : "none";
    });
  }
  map.on("overlayadd overlayremove baselayerchange", syncLegend);

  /* ---- tools: search, ZAE view, profile, print ---- */

  function fold(text) {
    return String(text).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase().trim();
  }

  function openFeature(layerId, i) {
    var item = featureLayers[layerId] && featureLayers[layerId][i];
    if (!item) { return false; }
    if (!map.hasLayer(groups[layerId])) { groups[layerId].addTo(map); syncLegend(); }
    var layer = null;
    data.layers.forEach(function (l) { if (l.id === layerId) { layer = l; } });
    var centre;
    // No zoom animation: the popup's automatic pan must see the final view.
    if (item.getBounds) {
      map.fitBounds(item.getBounds(), {maxZoom: 18, padding: [30, 30], animate: false});
      centre = item.getBounds().getCenter();
    } else {
      centre = item.getLatLng();
      map.setView(centre, Math.max(map.getZoom(), 16), {animate: false});
    }
    L.popup(POPUP_OPTIONS).setLatLng(centre)
      .setContent(popupContent(layer, decodedLayers[layerId], i)).openOn(map);
    return true;
  }

  var parcelIndex = new Map();
  if (decodedLayers.parcelles && decodedLayers.parcelles.props.idu) {
    decodedLayers.parcelles.props.idu.forEach(function (idu, i) {
      if (idu !== null) { parcelIndex.set(idu.toUpperCase(), i); }
    });
  }

  function searchParcels(q) {
    var key = q.replace(/\s+/g, "").toUpperCase();
    if (parcelIndex.has(key)) { return [parcelIndex.get(key)]; }
    // "AB 12" or "0A0012": section and number within the territory.
    var m = /^([0-9A-Z]{1,2})0*([0-9]{1,4})$/.exec(key);
    if (!m) { return []; }
    var suffix = (m[1].length === 1 ? "0" + m[1] : m[1]) + ("0000" + m[2]).slice(-4);
    var found = [];
    parcelIndex.forEach(function (i, idu) {
      if (found.length < 20 && idu.slice(-6) === suffix) { found.push(i); }
    });
    return found;
  }

  function searchCommunes(q) {
    var f = fold(q);
    return meta.communes.filter(function (c) {
      return c.code === q.trim() || (c.nom && fold(c.nom).indexOf(f) >= 0);
    });
  }

  var search = L.control({position: "topleft"});
  search.onAdd = function () {
    var box = el("div", "obs-recherche leaflet-control");
    var form = el("form");
    var input = el("input");
    input.type = "search";
    input.placeholder = "Parcelle (IDU, « AB 12 ») ou commune";
    input.setAttribute("aria-label", "Rechercher une parcelle ou une commune");
    var button = el("button", null, "Chercher");
    button.type = "submit";
    var result = el("div", "obs-resultat");
    form.appendChild(input);
    form.appendChild(button);
    box.appendChild(form);
    box.appendChild(result);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      result.textContent = "";
      var q = input.value;
      if (!q.trim()) { return; }
      var parcels = searchParcels(q);
      var communes = searchCommunes(q);
      if (parcels.length === 1 && communes.length === 0) {
        openFeature("parcelles", parcels[0]);
        result.textContent = "Parcelle trouvée.";
        return;
      }
      if (parcels.length === 0 && communes.length === 1) {
        var b = communes[0].bbox;
        map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
        result.textContent = "Commune " + (communes[0].nom || communes[0].code);
        return;
      }
      if (parcels.length === 0 && communes.length === 0) {
        result.textContent = "Aucun résultat pour « " + q + " ».";
        return;
      }
      var list = el("ul");
      parcels.forEach(function (i) {
        var li = el("li");
        var a = el("button", "obs-lien", "Parcelle " + decodedLayers.parcelles.props.idu[i]);
        a.type = "button";
        a.addEventListener("click", function () { openFeature("parcelles", i); });
        li.appendChild(a);
        list.appendChild(li);
      });
      communes.forEach(function (c) {
        var li = el("li");
        var a = el("button", "obs-lien", "Commune " + (c.nom ? c.nom + " (" + c.code + ")" : c.code));
        a.type = "button";
        a.addEventListener("click", function () {
          map.fitBounds([[c.bbox[1], c.bbox[0]], [c.bbox[3], c.bbox[2]]]);
        });
        li.appendChild(a);
        list.appendChild(li);
      });
      result.appendChild(list);
    });
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    return box;
  };
  search.addTo(map);

  function showZae(id) {
    var zae = null;
    meta.zae.forEach(function (z) { if (z.id === id) { zae = z; } });
    if (!zae) { showOverview(); return; }
    if (groups.zae && !map.hasLayer(groups.zae)) { groups.zae.addTo(map); }
    if (groups.zae_unites && !map.hasLayer(groups.zae_unites)) { groups.zae_unites.addTo(map); }
    syncLegend();
    bringPointsToFront();
    map.fitBounds([[zae.bbox[1], zae.bbox[0]], [zae.bbox[3], zae.bbox[2]]],
                  {padding: [20, 20], animate: false});
    var item = featureLayers.zae && featureLayers.zae[zae.index];
    if (item) {
      L.popup(POPUP_OPTIONS).setLatLng(item.getBounds().getCenter())
        .setContent(popupContent(data.layers.filter(function (l) { return l.id === "zae"; })[0],
                                 decodedLayers.zae, zae.index)).openOn(map);
    }
  }

  function setHash(hash) {
    // A link to the current view; some browsers refuse it for local files.
    try { history.replaceState(null, "", hash); } catch (e) { return; }
  }

  var tools = L.control({position: "topleft"});
  var zaeSelect = null;
  tools.onAdd = function () {
    var box = el("div", "obs-outils leaflet-control");
    if (meta.zae.length) {
      var label = el("label", null, "Vue : ");
      zaeSelect = el("select", "obs-vue");
      var opt = el("option", null, "Vue d'ensemble du territoire");
      opt.value = "";
      zaeSelect.appendChild(opt);
      meta.zae.forEach(function (z) {
        var o = el("option", null, "ZAE " + z.nom);
        o.value = z.id;
        zaeSelect.appendChild(o);
      });
      zaeSelect.addEventListener("change", function () {
        setHash(zaeSelect.value ? "#zae=" + encodeURIComponent(zaeSelect.value) : "#");
        if (zaeSelect.value) {
          showZae(zaeSelect.value);
        } else {
          map.closePopup();
          showOverview();
        }
      });
      label.appendChild(zaeSelect);
      box.appendChild(label);
    }
    if (meta.profils.length > 1) {
      var plabel = el("label", null, "Score : ");
      var psel = el("select", "obs-profil-choix");
      meta.profils.forEach(function (p) {
        var o = el("option", null, p.libelle);
        o.value = p.nom;
        psel.appendChild(o);
      });
      psel.addEventListener("change", function () {
        currentProfile = psel.value;
        restyleParcels();
        var sec = legendSections.parcelles;
        if (sec) {
          sec.title.textContent = sec.baseTitle + " — score « " + profileOf(currentProfile).libelle + " »";
        }
      });
      plabel.appendChild(psel);
      box.appendChild(plabel);
    }
    var print = el("button", "obs-imprimer", "Imprimer");
    print.type = "button";
    print.title = "Imprimer la vue courante (légende comprise)";
    print.addEventListener("click", function () { window.print(); });
    box.appendChild(print);
    L.DomEvent.disableClickPropagation(box);
    return box;
  };
  tools.addTo(map);

  var hash = /^#zae=(.+)$/.exec(window.location.hash);
  if (hash && zaeSelect) {
    var wanted = null;
    try { wanted = decodeURIComponent(hash[1]); } catch (e) { wanted = null; }
    if (wanted !== null) {
      zaeSelect.value = wanted;
      if (zaeSelect.value === wanted) { showZae(wanted); }
    }
  }

  window.observatoire = {
    map: map, groups: groups, stats: stats, openFeature: openFeature, showZae: showZae,
    fond: fond, fondNiveaux: fondLevels,
    ready: true, readyMs: Math.round(performance.now())
  };
  return window.observatoire;
}
