// The console works without this file; it only adds keyboard moves in the review queue:
// j / k focus the next / previous record (outside text fields).
"use strict";
document.addEventListener("keydown", function (event) {
  var target = event.target;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (target && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName)) return;
  if (event.key !== "j" && event.key !== "k") return;
  var items = Array.prototype.slice.call(document.querySelectorAll(".review-item"));
  if (!items.length) return;
  var at = items.indexOf(document.activeElement.closest ? document.activeElement.closest(".review-item") : null);
  var next = event.key === "j" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
  items[next].focus();
  items[next].scrollIntoView({ block: "start" });
  event.preventDefault();
});
