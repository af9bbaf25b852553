// The console's only script of its own: a JSON field is checked before its form is sent
// (the browser's own validation then stops the form, and htmx does too).
document.addEventListener("input", (e) => {
  const t = e.target;
  if (!(t instanceof HTMLTextAreaElement) || !t.hasAttribute("data-json")) return;
  if (t.value.trim() === "") return t.setCustomValidity("");
  try {
    const v = JSON.parse(t.value);
    t.setCustomValidity(typeof v === "object" && v !== null && !Array.isArray(v) ? "" : "must be a JSON object");
  } catch (err) {
    t.setCustomValidity(`not JSON: ${err.message}`);
  }
});

// The API page: open or close every operation at once.
document.addEventListener("click", (e) => {
  const b = e.target instanceof Element ? e.target.closest("button[data-details]") : null;
  if (b === null) return;
  const open = b.getAttribute("data-details") === "open";
  for (const d of document.querySelectorAll("details.op")) d.open = open;
});

// A link to an operation (its anchor) opens it.
const openTarget = () => {
  const t = location.hash.length > 1 ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  const d = t?.closest("details");
  if (d && !d.open) {
    d.open = true;
    t.scrollIntoView();
  }
};
addEventListener("hashchange", openTarget);
document.addEventListener("DOMContentLoaded", openTarget);
