"""The report page's inline style sheet and script (no CDN, nothing fetched).

The style keeps the page readable from a 390 px phone to a 1600 px screen: every table and
figure scrolls inside its own box, never the page. The script (vanilla JavaScript, no library)
makes every table sortable (click or Enter on a header; numbers sort as numbers, ``n/a`` and
empty cells last) and puts a filter box over the KPI and episode tables (class
``filterable``) and every table of more than `FILTER_MIN_ROWS` rows, with a "failed only"
switch where the table marks failed episodes.
"""

from __future__ import annotations

#: Tables with more rows than this get a filter box.
FILTER_MIN_ROWS = 5

CSS = """
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1400px; margin: 1.5em auto;
       padding: 0 12px; color: #222; overflow-wrap: anywhere; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; } h3 { font-size: 1.08em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.8em 0;
          -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 13px; overflow-wrap: normal; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; white-space: nowrap; } tr:nth-child(even) td { background: #fafafa; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable::after { content: " \\2195"; color: #999; }
th[aria-sort="ascending"]::after { content: " \\2191"; color: #222; }
th[aria-sort="descending"]::after { content: " \\2193"; color: #222; }
td a { white-space: nowrap; }
tr:has(.bad) td { background: #fff1f0; }
.bad { color: #a8071a; font-weight: 600; } .good { color: #237804; }
code.cmd { font-size: 12px; user-select: all; background: #f6f6f6; padding: 1px 4px; }
section.cell td { white-space: nowrap; }
.figure img { display: block; max-width: 100%; min-width: 720px; height: auto; }
img { max-width: 100%; height: auto; }
.clip { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; max-width: 100%; }
.clip img, .clip video { display: block; max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; font-size: 12px; }
section.cell { scroll-margin-top: 8px; padding: 0 0.5em; border-left: 4px solid transparent; }
section.cell:target { border-left-color: #d62728; background: #fffbe6; }
.tools { display: flex; flex-wrap: wrap; gap: 0.3em 1em; align-items: center; font-size: 13px; }
.tools input[type=search] { flex: 1 1 12em; max-width: 24em; font: inherit; padding: 2px 6px; }
.tools .count { color: #666; }
"""

JS = """
(function () {
  "use strict";
  var MIN_ROWS = __MIN_ROWS__;
  function cellKey(row, col) {
    var cell = row.cells[col];
    var text = cell ? (cell.getAttribute("data-sort") || cell.textContent).trim() : "";
    var match = text.match(/^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i);
    return {
      missing: text === "" || text === "n/a" || text === "?",
      num: match ? parseFloat(match[0]) : NaN,
      text: text.toLowerCase()
    };
  }
  function compare(a, b) {
    if (!isNaN(a.num) && !isNaN(b.num) && a.num !== b.num) { return a.num - b.num; }
    if (!isNaN(a.num) !== !isNaN(b.num)) { return isNaN(a.num) ? 1 : -1; }
    return a.text < b.text ? -1 : (a.text > b.text ? 1 : 0);
  }
  function sortBy(table, th, col) {
    var body = table.tBodies[0];
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return { row: row, key: cellKey(row, col), index: index };
    });
    rows.sort(function (x, y) {
      if (x.key.missing !== y.key.missing) { return x.key.missing ? 1 : -1; }
      return dir * compare(x.key, y.key) || x.index - y.index;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }
  function makeSortable(table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.title = "Sort by " + th.textContent;
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(table, th, col);
        }
      });
    });
  }
  function makeFilterable(table) {
    var body = table.tBodies[0];
    if (!body || (body.rows.length <= MIN_ROWS && !table.classList.contains("filterable"))) {
      return;
    }
    var tools = document.createElement("div");
    tools.className = "tools";
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "Filter rows";
    input.setAttribute("aria-label", "Filter the rows of this table");
    tools.appendChild(input);
    var failedOnly = null;
    if (table.querySelector("td .bad")) {
      var label = document.createElement("label");
      failedOnly = document.createElement("input");
      failedOnly.type = "checkbox";
      label.appendChild(failedOnly);
      label.appendChild(document.createTextNode(" failed only"));
      tools.appendChild(label);
    }
    var count = document.createElement("span");
    count.className = "count";
    tools.appendChild(count);
    function apply() {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(body.rows, function (row) {
        var text = row.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        if (failedOnly && failedOnly.checked) { keep = keep && !!row.querySelector(".bad"); }
        row.hidden = !keep;
        shown += keep ? 1 : 0;
      });
      count.textContent = shown + " of " + body.rows.length + " rows";
    }
    input.addEventListener("input", apply);
    if (failedOnly) { failedOnly.addEventListener("change", apply); }
    var box = table.parentNode.classList.contains("scroll") ? table.parentNode : table;
    box.parentNode.insertBefore(tools, box);
    apply();
  }
  Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
    makeSortable(table);
    makeFilterable(table);
  });
})();
""".replace("__MIN_ROWS__", str(FILTER_MIN_ROWS))
