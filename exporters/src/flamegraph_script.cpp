#include "flamegraph_script.hpp"

namespace pysample::exporters {

std::string_view flamegraph_style() {
    return R"css(
text{font-family:sans-serif;font-size:12px;fill:#222}
#frames text,#details,#matched{font-family:monospace}
#frames text{pointer-events:none}
#frames g{cursor:pointer}
#frames g:hover rect{stroke:#222;stroke-width:1}
#title{font-size:16px;font-weight:bold}
#sub{fill:#666}
#matched{fill:#909}
.t text{font-weight:bold;fill:#fff}
.m text{fill:#777}
.a{opacity:.5}
.h{display:none}
.hl rect{fill:#e23ee2}
#frames.s g:not(.hl) rect{fill-opacity:.35}
.btn{cursor:pointer}
.btn rect{fill:#fff;stroke:#999}
.btn:hover rect{fill:#e8eefa;stroke:#448}
.btn text{text-anchor:middle}
.off{opacity:.3;pointer-events:none}
)css";
}

// Each frame is <g data-o="first sample"><title>label&#10;N samples, P%</title><rect/><text/></g>,
// in depth-first order with the root first. A frame's samples are [data-o, data-o + N), so a
// frame contains another exactly when its range does and it is shallower; zoom and search work
// on these integer ranges, not on the rounded pixel positions.
std::string_view flamegraph_script() {
    return R"js(
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var box = $('frames'), details = $('details'), matched = $('matched');
  var row = +box.getAttribute('data-row'), hint = details.textContent;
  var frames = [], root, zoomed = null, term = '', charWidth = measureCharWidth();

  function measureCharWidth() {
    var probe = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    probe.textContent = 'abcdefghijklmnopqrstuvwxyz';
    box.appendChild(probe);
    var width = probe.getComputedTextLength() / 26;
    box.removeChild(probe);
    return width > 0 ? width : 7.3;
  }
  function round2(v) { return String(Math.round(v * 100) / 100); }
  function percent(part, whole) { return whole ? round2(100 * part / whole) + '%' : '0%'; }
  // "f (/a/b/c.py:3)" is shown as "f (c.py:3)"; the title and the details line keep the path.
  function shortLabel(label) { return label.replace(/\([^()]*\/([^()\/]*)\)$/, '($1)'); }
  function fit(text, width) {
    var chars = Array.from(text), room = Math.floor((width - 6) / charWidth);
    if (chars.length <= room) return text;
    return room < 5 ? '' : chars.slice(0, room - 2).join('') + '..';
  }

  function readFrame(g) {
    var lines = g.children[0].textContent.split('\n'), rect = g.children[1];
    var f = {g: g, rect: rect, text: g.children[2], label: lines[0], n: parseInt(lines[1], 10),
             o: +g.getAttribute('data-o'), y: +rect.getAttribute('y'), merged: g.classList.contains('m')};
    f.shown = g.classList.contains('t') ? f.label : shortLabel(f.label);
    g.frame = f;
    return f;
  }
  for (var i = 0; i < box.children.length; i++) frames.push(readFrame(box.children[i]));
  root = frames[0];
  frames.forEach(function (f) { f.d = Math.round(Math.abs(f.y - root.y) / row); });
  var left = +root.rect.getAttribute('x'), width = +root.rect.getAttribute('width');

  function place(f, x, w) {
    f.rect.setAttribute('x', round2(x));
    f.rect.setAttribute('width', round2(w));
    f.text.setAttribute('x', round2(x + 3));
    f.text.textContent = fit(f.shown, w);
  }
  // The zoomed frame and its descendants rescale to the full width, its ancestors stay (dimmed)
  // at full width, everything else hides. Zooming on the root shows the whole profile again.
  function zoom(z) {
    if (!root.n) return;
    zoomed = z === root ? null : z;
    var scale = width / z.n, zEnd = z.o + z.n;
    frames.forEach(function (f) {
      var end = f.o + f.n;
      var inside = f.d >= z.d && f.o >= z.o && end <= zEnd;
      var ancestor = f.d < z.d && f.o <= z.o && end >= zEnd;
      f.g.classList.toggle('h', !inside && !ancestor);
      f.g.classList.toggle('a', ancestor);
      if (inside) place(f, left + (f.o - z.o) * scale, f.n * scale);
      else if (ancestor) place(f, left, width);
    });
    $('zoom').classList.toggle('off', !zoomed);
  }

  function describe(f) {
    var text = f.label + ' \u2014 ' + f.n + ' samples, ' + percent(f.n, root.n);
    if (zoomed && f.d >= zoomed.d) text += ' (' + percent(f.n, zoomed.n) + ' of the zoomed frame)';
    return fit(text, width * 0.7);
  }
  function frameOf(event) {
    var g = event.target.closest('#frames > g');
    return g ? g.frame : null;
  }

  function toRegExp(text) {
    var flags = text === text.toLowerCase() ? 'i' : '';
    try {
      return new RegExp(text, flags);
    } catch (e) {
      return new RegExp(text.replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&'), flags);
    }
  }
  // Nested matches count once: frames are sorted by first sample, shallower first, and a match
  // that starts inside the last counted range lies entirely inside it.
  function matchedSamples(hits) {
    var end = 0, total = 0;
    hits.slice().sort(function (a, b) { return a.o - b.o || a.d - b.d; }).forEach(function (f) {
      if (f.o >= end) { total += f.n; end = f.o + f.n; }
    });
    return total;
  }
  function search(text) {
    if (text == null) {
      text = prompt('Search frames for a regular expression (ignores case unless it has capitals; ' +
                    'include a / to match directories too):', term);
    }
    if (text == null) return;
    if (!text) return clearSearch();
    var re = toRegExp(text), paths = text.indexOf('/') >= 0;
    term = text;
    var hits = frames.filter(function (f) {
      var hit = f !== root && !f.merged && re.test(paths ? f.label : f.shown);
      f.g.classList.toggle('hl', hit);
      return hit;
    });
    matched.textContent = 'Matched: ' + percent(matchedSamples(hits), root.n) + ' of samples (' +
        hits.length + (hits.length === 1 ? ' frame)' : ' frames)');
    box.classList.add('s');
    $('clear').classList.remove('off');
  }
  function clearSearch() {
    term = '';
    frames.forEach(function (f) { f.g.classList.remove('hl'); });
    matched.textContent = '';
    box.classList.remove('s');
    $('clear').classList.add('off');
  }

  box.addEventListener('mouseover', function (e) {
    var f = frameOf(e);
    details.textContent = f ? describe(f) : hint;
  });
  box.addEventListener('mouseout', function () { details.textContent = hint; });
  box.addEventListener('click', function (e) {
    var f = frameOf(e);
    if (f) zoom(f);
  });
  $('search').addEventListener('click', function () { search(); });
  $('clear').addEventListener('click', clearSearch);
  $('zoom').addEventListener('click', function () { zoom(root); });
  document.addEventListener('keydown', function (e) {
    if (((e.ctrlKey || e.metaKey) && e.key === 'f') || (e.key === '/' && !e.ctrlKey && !e.metaKey)) {
      e.preventDefault();
      search();
    } else if (e.key === 'Escape') {
      if (term) clearSearch(); else zoom(root);
    }
  });
  zoom(root);  // fits the labels to the font this browser really uses
})();
)js";
}

}  // namespace pysample::exporters
