// auditkit saliency viewer: plain JavaScript, no network. Every string from the
// report is put into the page as text (textContent, Option), never as markup.
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("auditkit-data").textContent);
  var P = boot.payload;
  if (window.auditkitImages) Object.assign(boot.images, window.auditkitImages);  // the --assets script
  var CASES = P.cases;
  var METHODS = Object.keys(P.methods || {});
  var FLAGS = ["shortcut_suspected", "peak_outside_lesion", "low_localisation"];
  var FLAG_TEXT = {
    shortcut_suspected: "shortcut suspected",
    peak_outside_lesion: "peak outside the lesion",
    low_localisation: "low localisation"
  };
  var VERDICT_TEXT = {
    looks_at_finding: "looks at the finding",
    looks_elsewhere: "looks elsewhere",
    cannot_tell: "cannot tell"
  };
  var STORE = "auditkit-review:" + P.report.results_sha256;
  var $ = function (id) { return document.getElementById(id); };

  var state = {
    shown: [],      // indices into CASES that match, in list order
    pos: -1,        // position in shown
    layout: "side",
    method: METHODS[0] || "",
    opacity: 0.6,
    contour: true,
    window: 255,
    level: 128,
    slice: 0,       // the slice shown of a volume case
    sliceOf: null,  // the volume case that slice belongs to
    verdicts: loadVerdicts()
  };
  window.auditkitViewer = { state: state, cases: CASES, payload: P };

  function loadVerdicts() {
    try {
      var raw = window.localStorage.getItem(STORE);
      var parsed = raw ? JSON.parse(raw) : {};
      return parsed && typeof parsed === "object" ? parsed : {};
    } catch (e) { return {}; }
  }
  function saveVerdicts() {
    try { window.localStorage.setItem(STORE, JSON.stringify(state.verdicts)); } catch (e) { /* private mode: kept in memory */ }
  }
  function url(rel) { return boot.images[rel] || (boot.base + rel); }
  function fmt(x, d) { return (x === null || x === undefined) ? "n/a" : Number(x).toFixed(d === undefined ? 3 : d); }
  function text(el, value) { el.textContent = value === null || value === undefined ? "" : String(value); return el; }
  function make(tag, cls, value) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (value !== undefined) text(el, value);
    return el;
  }

  // --- identity and filter controls -------------------------------------------------
  text($("identity"), "model " + (P.report.model.name || "?") + " (" + (P.report.model.arch || "?") + "), report " +
       P.report.folder + ", " + CASES.length + " explained cases, operating point " + fmt(P.operating_point.threshold));
  P.cohorts.forEach(function (c) { $("f-cohort").add(new Option(c, c)); });
  (P.sites || []).forEach(function (s) { $("f-site").add(new Option(s, s)); });
  var attrSelects = {};
  Object.keys(P.attributes).forEach(function (name, k) {
    var id = "f-attr-" + k;
    var label = make("label", null, name);
    label.htmlFor = id;
    var select = document.createElement("select");
    select.id = id;
    select.add(new Option("all", ""));
    P.attributes[name].forEach(function (v) { select.add(new Option(v, v)); });
    select.addEventListener("change", applyFilters);
    attrSelects[name] = select;
    $("f-attributes").appendChild(label);
    $("f-attributes").appendChild(select);
  });
  METHODS.forEach(function (m) {
    var label = P.methods[m].label || m;
    $("f-flag-method").add(new Option(label, m));
    $("c-method").add(new Option(label, m));
  });

  function checked(name) {
    return Array.prototype.filter.call(document.querySelectorAll("input[name=" + name + "]"), function (i) { return i.checked; })
      .map(function (i) { return i.value; });
  }
  function metric(c, key, how) {
    var values = METHODS.map(function (m) { return c.metrics && c.metrics[m] ? c.metrics[m][key] : null; })
      .filter(function (v) { return v !== null && v !== undefined; });
    if (!values.length) return null;
    return how === "max" ? Math.max.apply(null, values) : Math.min.apply(null, values);
  }
  function flagged(c, flag, method) {
    if (!method) return !!(c.flags && c.flags[flag]);
    var m = c.metrics && c.metrics[method];
    return !!(m && m.flags && m.flags[flag]);
  }

  function applyFilters() {
    var outcomes = checked("outcome");
    var flags = checked("flag");
    var flagMethod = $("f-flag-method").value;
    var cohort = $("f-cohort").value;
    var site = $("f-site").value;
    var lo = parseFloat($("f-score-min").value), hi = parseFloat($("f-score-max").value);
    if (isNaN(lo)) lo = -Infinity;
    if (isNaN(hi)) hi = Infinity;
    var verdict = $("f-verdict").value;
    var attrs = Object.keys(attrSelects).map(function (n) { return [n, attrSelects[n].value]; })
      .filter(function (p) { return p[1] !== ""; });
    var out = [];
    for (var i = 0; i < CASES.length; i++) {
      var c = CASES[i];
      if (outcomes.indexOf(c.outcome) < 0 && ["TP", "FP", "FN", "TN"].indexOf(c.outcome) >= 0) continue;
      if (cohort && c.cohort !== cohort) continue;
      if (site && c.site !== site) continue;
      if (c.score < lo || c.score > hi) continue;
      var ok = true;
      for (var a = 0; a < attrs.length && ok; a++) ok = String(c.attributes[attrs[a][0]]) === attrs[a][1];
      for (var f = 0; f < flags.length && ok; f++) ok = flagged(c, flags[f], flagMethod);
      if (!ok) continue;
      var v = state.verdicts[c.id];
      if (verdict === "none" && v && v.verdict) continue;
      if (verdict && verdict !== "none" && (!v || v.verdict !== verdict)) continue;
      out.push(i);
    }
    sortShown(out, $("f-sort").value);
    var current = state.pos >= 0 ? state.shown[state.pos] : null;
    state.shown = out;
    var keep = current === null ? -1 : out.indexOf(current);
    state.pos = keep >= 0 ? keep : (out.length ? 0 : -1);
    renderList();
    renderCase();
  }

  function sortShown(rows, how) {
    var key = {
      score_desc: function (c) { return -c.score; },
      score_asc: function (c) { return c.score; },
      error_desc: function (c) { return c.error === null ? Infinity : -c.error; },
      corner_desc: function (c) { var v = metric(c, "corner_share", "max"); return v === null ? Infinity : -v; },
      energy_asc: function (c) { var v = metric(c, "energy_in_lesion", "min"); return v === null ? Infinity : v; },
      iou_asc: function (c) { var v = metric(c, "iou_otsu", "min"); return v === null ? Infinity : v; }
    }[how];
    if (!key) return;
    rows.sort(function (a, b) { var d = key(CASES[a]) - key(CASES[b]); return d || a - b; });
  }

  function renderList() {
    text($("count"), state.shown.length + " of " + CASES.length + " cases match");
    var list = $("cases");
    var fragment = document.createDocumentFragment();
    state.shown.forEach(function (i, pos) {
      var c = CASES[i];
      var li = document.createElement("li");
      li.id = "case-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", pos === state.pos ? "true" : "false");
      li.dataset.pos = pos;
      li.appendChild(make("span", "oc", c.outcome));
      li.appendChild(make("span", "id", c.id));
      li.appendChild(make("span", "sc", fmt(c.score, 2)));
      var on = FLAGS.filter(function (f) { return c.flags && c.flags[f]; });
      if (on.length) {
        var fl = make("span", "fl", "\u2691" + on.length);
        fl.title = on.map(function (f) { return FLAG_TEXT[f]; }).join(", ");
        fl.setAttribute("aria-label", "flags: " + fl.title);
        li.appendChild(fl);
      }
      var v = state.verdicts[c.id];
      if (v && v.verdict) li.appendChild(make("span", "vd", "\u2713"));
      fragment.appendChild(li);
    });
    list.replaceChildren(fragment);
    if (state.pos >= 0) list.setAttribute("aria-activedescendant", "case-" + state.shown[state.pos]);
    else list.removeAttribute("aria-activedescendant");
  }

  function select(pos) {
    if (pos < 0 || pos >= state.shown.length) return;
    var list = $("cases");
    var old = list.querySelector("li[aria-selected=true]");
    if (old) old.setAttribute("aria-selected", "false");
    state.pos = pos;
    var li = list.children[pos];
    if (li) {
      li.setAttribute("aria-selected", "true");
      list.setAttribute("aria-activedescendant", li.id);
      if (li.scrollIntoView) li.scrollIntoView({ block: "nearest" });
    }
    renderCase();
  }

  // --- pixels ------------------------------------------------------------------------
  var pixelCache = new Map();
  function pixels(rel) {
    if (pixelCache.has(rel)) return pixelCache.get(rel);
    var promise = new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () {
        var canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        var ctx = canvas.getContext("2d", { willReadFrequently: true });
        ctx.drawImage(img, 0, 0);
        try { resolve(ctx.getImageData(0, 0, canvas.width, canvas.height)); }
        catch (e) { reject(new Error("cannot read the pixels of " + rel + " (" + e.message + ")")); }
      };
      img.onerror = function () { reject(new Error("cannot load " + rel)); };
      img.src = url(rel);
    });
    if (pixelCache.size > 600) pixelCache.delete(pixelCache.keys().next().value);
    pixelCache.set(rel, promise);
    return promise;
  }

  // The lesion outline: mask pixels with a 4-neighbour outside the mask (or on the border),
  // in the image's own pixel grid.
  function outline(mask) {
    var w = mask.width, h = mask.height, d = mask.data, out = new Uint8Array(w * h);
    function on(x, y) { return x >= 0 && y >= 0 && x < w && y < h && d[(y * w + x) * 4] > 127; }
    for (var y = 0; y < h; y++) for (var x = 0; x < w; x++) {
      if (on(x, y) && !(on(x - 1, y) && on(x + 1, y) && on(x, y - 1) && on(x, y + 1))) out[y * w + x] = 1;
    }
    return out;
  }

  function compose(image, map, mask, method) {
    var w = image.width, h = image.height, out = new ImageData(w, h);
    var src = image.data, dst = out.data;
    var low = state.level - state.window / 2, span = state.window;
    var lut = map ? boot.luts[(P.methods[method].scale || {}).cmap || "inferno"] : null;
    var edge = state.contour && mask && mask.width === w && mask.height === h ? outline(mask) : null;
    for (var p = 0, q = 0; p < w * h; p++, q += 4) {
      for (var k = 0; k < 3; k++) {
        var v = (src[q + k] - low) / span * 255;
        dst[q + k] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
      if (map) {
        var code = map.data[q];
        var weight = state.opacity * code / 255;
        var colour = lut[code];
        for (k = 0; k < 3; k++) dst[q + k] = dst[q + k] * (1 - weight) + colour[k] * weight;
      }
      if (edge && edge[p]) { dst[q] = 0; dst[q + 1] = 255; dst[q + 2] = 255; }
      dst[q + 3] = 255;
    }
    return out;
  }

  function panel(name, caption) {
    var fig = document.createElement("figure");
    var canvas = document.createElement("canvas");
    canvas.dataset.panel = name;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", caption);
    fig.appendChild(canvas);
    fig.appendChild(make("figcaption", null, caption));
    return fig;
  }

  // The pixels drawn for a case: a 2-D case's own images, or the shown slice's rows of a volume's sprites.
  function files(c) {
    var v = c.volume;
    if (!v) return { image: c.image, mask: c.mask, maps: c.maps || {}, get: pixels };
    var k = state.slice, h = v.slice_shape[0];
    var sprites = v.sprites || {};
    var lesion = (v.lesion_slices || []).indexOf(k) >= 0;
    return {
      image: sprites.image, mask: lesion ? sprites.mask : null, maps: sprites.maps || {},
      get: function (rel) {
        return pixels(rel).then(function (full) {
          var size = full.width * h * 4;
          return new ImageData(full.data.slice(k * size, (k + 1) * size), full.width, h);
        });
      }
    };
  }

  function showSlice(c) {
    var box = $("slice-control"), v = c && c.volume;
    box.hidden = !v;
    if (!v) { state.sliceOf = null; return; }
    if (state.sliceOf !== c.id) { state.sliceOf = c.id; state.slice = v.slice; }
    var input = $("c-slice");
    input.max = v.depth - 1;
    input.value = state.slice;
    text($("c-slice-out"), state.slice + " of " + v.depth + " (saliency peak: " + v.slice + ")");
  }

  function stepSlice(delta) {
    var c = current();
    if (!c || !c.volume) return false;
    var k = Math.max(0, Math.min(c.volume.depth - 1, state.slice + delta));
    if (k !== state.slice) { state.slice = k; showSlice(c); draw(); }
    return true;
  }

  var drawToken = 0;
  function draw() {
    var c = state.pos >= 0 ? CASES[state.shown[state.pos]] : null;
    var host = $("panels");
    host.className = state.layout === "blend" ? "blend" : "";
    if (!c) { host.replaceChildren(); return Promise.resolve(); }
    var token = ++drawToken;
    var wanted = state.layout === "blend" ? [state.method] : METHODS;
    var f = files(c), k = c.volume ? state.slice : null;
    var jobs = [f.get(f.image), f.mask ? f.get(f.mask) : Promise.resolve(null)];
    wanted.forEach(function (m) { jobs.push(f.maps[m] ? f.get(f.maps[m]) : Promise.resolve(null)); });
    return Promise.all(jobs).then(function (got) {
      if (token !== drawToken) return;
      var image = got[0], mask = got[1];
      var figures = [];
      if (state.layout !== "blend") figures.push(["image", k === null ? "Image" : "Image, slice " + k, null, null]);
      wanted.forEach(function (m, k) {
        var scale = P.methods[m].scale || {};
        figures.push([m, (P.methods[m].label || m) + " (0 to " + fmt(scale.vmax, 3) + ", shared scale)", got[2 + k], m]);
      });
      var fragment = document.createDocumentFragment();
      figures.forEach(function (f) {
        var fig = panel(f[0], f[1]);
        var canvas = fig.querySelector("canvas");
        canvas.width = image.width;
        canvas.height = image.height;
        canvas.getContext("2d").putImageData(compose(image, f[2], mask, f[3]), 0, 0);
        fragment.appendChild(fig);
      });
      host.replaceChildren(fragment);
      document.body.dataset.drawn = c.id;
      document.body.dataset.drawnSlice = k === null ? "" : String(k);
    }).catch(function (e) { host.replaceChildren(make("p", null, String(e.message || e))); });
  }

  function renderCase() {
    var c = state.pos >= 0 ? CASES[state.shown[state.pos]] : null;
    var facts = $("facts"), flags = $("flags");
    if (!c) {
      text($("case-title"), "No case matches the filters");
      facts.replaceChildren(); flags.replaceChildren();
      setVerdictControls(null);
      showSlice(null);
      return draw();
    }
    text($("case-title"), "Case " + c.id + " (" + (state.pos + 1) + " of " + state.shown.length + ")");
    var rows = [
      ["Outcome", c.outcome],
      [P.report.calibrated ? "Calibrated score" : "Score", fmt(c.score)],
      ["Label", c.label],
      ["Predicted", c.predicted],
      ["Operating point", (P.positive_class ? P.positive_class + " when score \u2265 " : "") + fmt(P.operating_point.threshold)],
      ["Split / site", (c.cohort || "?") + (c.site && c.site !== c.cohort ? " (" + c.site + ")" : "")]
    ];
    Object.keys(c.attributes || {}).forEach(function (k) { rows.push([k, c.attributes[k]]); });
    var m = c.metrics && c.metrics[state.method];
    if (m && c.volume) rows.push(["Metrics of", "slice " + c.volume.slice + " of " + c.volume.depth + " (saliency peak)"]);
    if (m) {
      rows.push(["Corner share", fmt(m.corner_share)]);
      rows.push(["Energy in lesion", fmt(m.energy_in_lesion)]);
      rows.push(["IoU (Otsu)", fmt(m.iou_otsu)]);
      rows.push(["Peak in lesion", m.peak_in_lesion === null || m.peak_in_lesion === undefined ? "n/a" : (m.peak_in_lesion ? "yes" : "no")]);
    }
    var fragment = document.createDocumentFragment();
    rows.forEach(function (r) { fragment.appendChild(make("dt", null, r[0])); fragment.appendChild(make("dd", null, r[1])); });
    facts.replaceChildren(fragment);
    var items = document.createDocumentFragment();
    FLAGS.forEach(function (f) {
      var on = c.flags && c.flags[f];
      var by = METHODS.filter(function (mm) { return flagged(c, f, mm); }).map(function (mm) { return P.methods[mm].label || mm; });
      var li = make("li", on ? "on" : "", (on ? "\u2691 " : "") + FLAG_TEXT[f] + (on ? " (" + by.join(", ") + ")" : ": no"));
      li.dataset.flag = f;
      li.dataset.on = on ? "true" : "false";
      items.appendChild(li);
    });
    flags.replaceChildren(items);
    setVerdictControls(c);
    showSlice(c);
    return draw();
  }

  // --- verdicts ------------------------------------------------------------------------
  function setVerdictControls(c) {
    var v = c ? state.verdicts[c.id] : null;
    document.querySelectorAll("input[name=verdict]").forEach(function (r) {
      r.checked = !!(v && v.verdict === r.value);
      r.disabled = !c;
    });
    $("v-note").value = v && v.note ? v.note : "";
    $("v-note").disabled = !c;
    reviewStatus();
  }
  function reviewStatus() {
    var n = Object.keys(state.verdicts).filter(function (k) { return state.verdicts[k].verdict; }).length;
    text($("review-status"), n + " of " + CASES.length + " cases reviewed");
  }
  function current() { return state.pos >= 0 ? CASES[state.shown[state.pos]] : null; }
  function setVerdict(value) {
    var c = current();
    if (!c) return;
    var v = state.verdicts[c.id] || {};
    v.verdict = value;
    v.note = $("v-note").value;
    v.reviewed_at = new Date().toISOString();
    state.verdicts[c.id] = v;
    saveVerdicts();
    document.querySelectorAll("input[name=verdict]").forEach(function (r) { r.checked = r.value === value; });
    var li = $("cases").children[state.pos];
    if (li && !li.querySelector(".vd")) li.appendChild(make("span", "vd", "\u2713"));
    reviewStatus();
  }
  document.querySelectorAll("input[name=verdict]").forEach(function (r) {
    r.addEventListener("change", function () { if (r.checked) setVerdict(r.value); });
  });
  $("v-note").addEventListener("input", function () {
    var c = current();
    if (!c) return;
    var v = state.verdicts[c.id] || {};
    v.note = $("v-note").value;
    state.verdicts[c.id] = v;
    saveVerdicts();
  });
  try { $("v-reviewer").value = window.localStorage.getItem("auditkit-reviewer") || ""; } catch (e) { /* none */ }
  $("v-reviewer").addEventListener("input", function () {
    try { window.localStorage.setItem("auditkit-reviewer", $("v-reviewer").value); } catch (e) { /* none */ }
  });

  function reviewed() {
    return CASES.filter(function (c) { var v = state.verdicts[c.id]; return v && (v.verdict || v.note); }).map(function (c) {
      var v = state.verdicts[c.id];
      return { id: c.id, verdict: v.verdict || null, note: v.note || "", reviewed_at: v.reviewed_at || null,
               outcome: c.outcome, cohort: c.cohort, site: c.site, score: c.score };
    });
  }
  // A cell a spreadsheet would read as a formula starts with one of = + - @ tab CR: prefix a quote.
  function csvCell(value) {
    var s = value === null || value === undefined ? "" : String(value);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return '"' + s.replace(/"/g, '""') + '"';
  }
  function download(name, type, body) {
    var blob = new Blob([body], { type: type });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  function reviewDocument() {
    return {
      format: "auditkit-review", version: 1,
      report: P.report.folder, results_sha256: P.report.results_sha256, model: P.report.model,
      reviewer: $("v-reviewer").value, exported: new Date().toISOString(),
      verdict_values: Object.keys(VERDICT_TEXT), verdicts: reviewed()
    };
  }
  window.auditkitViewer.reviewDocument = reviewDocument;
  $("export-json").addEventListener("click", function () {
    download("review.json", "application/json", JSON.stringify(reviewDocument(), null, 2) + "\n");
  });
  $("export-csv").addEventListener("click", function () {
    var cols = ["id", "verdict", "note", "outcome", "cohort", "site", "score", "reviewed_at", "reviewer"];
    var who = $("v-reviewer").value;
    var lines = [cols.join(",")].concat(reviewed().map(function (r) {
      r.reviewer = who;
      return cols.map(function (k) { return csvCell(r[k]); }).join(",");
    }));
    download("review.csv", "text/csv", lines.join("\r\n") + "\r\n");
  });

  // --- controls and keys -------------------------------------------------------------
  document.querySelectorAll("#filters input, #filters select").forEach(function (el) {
    el.addEventListener(el.type === "number" ? "input" : "change", applyFilters);
  });
  $("f-reset").addEventListener("click", function () {
    document.querySelectorAll("input[name=outcome]").forEach(function (i) { i.checked = true; });
    document.querySelectorAll("input[name=flag]").forEach(function (i) { i.checked = false; });
    document.querySelectorAll("#filters select").forEach(function (s) { s.selectedIndex = 0; });
    $("f-score-min").value = 0; $("f-score-max").value = 1;
    applyFilters();
  });
  document.querySelectorAll("input[name=layout]").forEach(function (r) {
    r.addEventListener("change", function () { if (r.checked) { state.layout = r.value; draw(); } });
  });
  $("c-method").addEventListener("change", function () { state.method = $("c-method").value; renderCase(); });
  $("c-opacity").addEventListener("input", function () {
    state.opacity = $("c-opacity").value / 100; text($("c-opacity-out"), $("c-opacity").value + "%"); draw();
  });
  $("c-contour").addEventListener("change", function () { state.contour = $("c-contour").checked; draw(); });
  function wl() {
    state.window = +$("c-window").value; state.level = +$("c-level").value;
    text($("c-window-out"), state.window); text($("c-level-out"), state.level); draw();
  }
  $("c-slice").addEventListener("input", function () {
    var c = current();
    if (!c || !c.volume) return;
    state.slice = +$("c-slice").value; showSlice(c); draw();
  });
  $("c-window").addEventListener("input", wl);
  $("c-level").addEventListener("input", wl);
  $("c-wl-reset").addEventListener("click", function () { $("c-window").value = 255; $("c-level").value = 128; wl(); });
  $("cases").addEventListener("click", function (e) {
    var li = e.target.closest ? e.target.closest("li") : null;
    if (li) select(+li.dataset.pos);
  });

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target, tag = t && t.tagName;
    var typing = tag === "TEXTAREA" || (tag === "INPUT" && (t.type === "text" || t.type === "number")) || tag === "SELECT";
    var arrowsTaken = typing || (tag === "INPUT" && (t.type === "range" || t.type === "radio"));
    var arrow = ["ArrowDown", "ArrowRight", "ArrowUp", "ArrowLeft"].indexOf(e.key) >= 0;
    if (typing || (arrow && arrowsTaken)) return;
    if (e.key === "j" || e.key === "ArrowDown" || e.key === "ArrowRight") { select(state.pos + 1); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowUp" || e.key === "ArrowLeft") { select(state.pos - 1); e.preventDefault(); }
    else if (e.key === "PageDown" || e.key === "]") { if (stepSlice(1)) e.preventDefault(); }
    else if (e.key === "PageUp" || e.key === "[") { if (stepSlice(-1)) e.preventDefault(); }
    else if (e.key === "1") setVerdict("looks_at_finding");
    else if (e.key === "2") setVerdict("looks_elsewhere");
    else if (e.key === "3") setVerdict("cannot_tell");
    else if (e.key === "c") { $("c-contour").checked = !$("c-contour").checked; state.contour = $("c-contour").checked; draw(); }
    else if (e.key === "b") {
      state.layout = state.layout === "blend" ? "side" : "blend";
      document.querySelectorAll("input[name=layout]").forEach(function (r) { r.checked = r.value === state.layout; });
      draw();
    }
  });

  applyFilters();
  document.body.dataset.ready = "true";
})();
