/* Customer search box of the segment report: looks a customer id up in the explanations
   embedded in the page. No network; the text reaches the page through textContent only. */
(function () {
  "use strict";
  var source = document.getElementById("report-data");
  var input = document.getElementById("explain-search");
  var out = document.getElementById("explain-out");
  if (!source || !input || !out) { return; }
  var data = JSON.parse(source.textContent).explain || { u: [], t: [] };
  var found = new Map();
  for (var i = 0; i < data.u.length; i++) { found.set(String(data.u[i]), data.t[i]); }
  function show() {
    var id = input.value.trim();
    if (!id) { out.textContent = ""; return; }
    out.textContent = found.has(id) ? found.get(id) : "No customer with id " + id + " in this run.";
  }
  input.addEventListener("input", show);
  input.addEventListener("change", show);
})();
