// smartspace-budget dashboard: keyboard reading of the chart's bars. The page works
// without this script (bars carry their values as titles and there is a data table);
// the script adds arrow-key navigation with a spoken read-out.
(function () {
  "use strict";
  var chart = document.getElementById("spend-chart");
  var readout = document.getElementById("bar-readout");
  if (!chart || !readout) { return; }
  var bars = Array.prototype.slice.call(chart.querySelectorAll("rect.bar"));
  if (bars.length === 0) { return; }

  function describe(bar) {
    readout.textContent = bar.getAttribute("aria-label");
  }

  function focusBar(index) {
    var target = bars[Math.max(0, Math.min(bars.length - 1, index))];
    bars.forEach(function (bar) { bar.setAttribute("tabindex", bar === target ? "0" : "-1"); });
    target.focus();
    describe(target);
  }

  chart.addEventListener("keydown", function (event) {
    var index = bars.indexOf(document.activeElement);
    if (index < 0) { return; }
    var moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (event.key in moves) {
      focusBar(index + moves[event.key]);
    } else if (event.key === "Home") {
      focusBar(0);
    } else if (event.key === "End") {
      focusBar(bars.length - 1);
    } else {
      return;
    }
    event.preventDefault();
  });

  bars.forEach(function (bar, index) {
    bar.addEventListener("focus", function () { describe(bar); });
    bar.addEventListener("mouseenter", function () { describe(bar); });
    bar.addEventListener("click", function () { focusBar(index); });
  });
})();
