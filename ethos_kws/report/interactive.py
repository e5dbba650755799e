"""Sortable, filterable tables in the HTML report, with one inline script the page's CSP allows by
its sha256 hash (no other script, no inline handlers, nothing remote).

A table rendered with class ``sortable`` gets clickable headers (numbers sort as numbers: "1,234",
"12.5%", "5.34×"; "n/a" and text after them) and, when it has a ``config`` column with more than one
value, a configuration selector above it. Without the script (or with it blocked) the table is
still a plain, complete table.
"""

from __future__ import annotations

import base64
import hashlib

SORTABLE_CLASS = "sortable"

SCRIPT = r"""(function () {
  "use strict";
  function numberOf(text) {
    var t = text.trim();
    if (!/^[-+]?[0-9][0-9,]*(\.[0-9]+)?\s*[%×]?$/.test(t)) { return null; }
    return parseFloat(t.replace(/[,%×\s]/g, ""));
  }
  function compare(a, b) {
    if (a.n !== null && b.n !== null) { return a.n - b.n; }
    if (a.n !== null) { return -1; }
    if (b.n !== null) { return 1; }
    return a.t.localeCompare(b.t);
  }
  function setUp(table) {
    var head = table.tHead && table.tHead.rows[0];
    var body = table.tBodies[0];
    if (!head || !body) { return; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (row, i) { row.dataset.order = String(i); });
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      th.title = "sort by " + th.textContent;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(head.cells, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var keyed = rows.map(function (row) {
          var text = row.cells[col] ? row.cells[col].textContent : "";
          return {row: row, n: numberOf(text), t: text, i: Number(row.dataset.order)};
        });
        keyed.sort(function (a, b) {
          var c = compare(a, b);
          return (ascending ? c : -c) || a.i - b.i;
        });
        keyed.forEach(function (k) { body.appendChild(k.row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
    var configCol = Array.prototype.findIndex.call(head.cells, function (th) { return th.textContent.trim() === "config"; });
    if (configCol < 0) { return; }
    var configs = [];
    rows.forEach(function (row) {
      var v = row.cells[configCol] ? row.cells[configCol].textContent : "";
      if (configs.indexOf(v) < 0) { configs.push(v); }
    });
    if (configs.length < 2) { return; }
    var label = document.createElement("label");
    label.className = "filter";
    label.appendChild(document.createTextNode("configuration: "));
    var select = document.createElement("select");
    [["", "all configurations"]].concat(configs.map(function (c) { return [c, c]; })).forEach(function (pair) {
      var option = document.createElement("option");
      option.value = pair[0];
      option.textContent = pair[1];
      select.appendChild(option);
    });
    select.addEventListener("change", function () {
      rows.forEach(function (row) {
        var v = row.cells[configCol] ? row.cells[configCol].textContent : "";
        row.hidden = select.value !== "" && v !== select.value;
      });
    });
    label.appendChild(select);
    table.parentNode.insertBefore(label, table);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table." + "sortable"), setUp);
})();"""

CSS = """
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " ▲"; }
table.sortable th[aria-sort="descending"]::after { content: " ▼"; }
label.filter { display: block; margin: 0.5em 0; font-size: 0.9em; }
"""


def script_hash() -> str:
    """The CSP source that allows exactly ``SCRIPT``: 'sha256-<base64 of its digest>'."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii") + "'"


def script_tag() -> str:
    return f"<script>{SCRIPT}</script>"
