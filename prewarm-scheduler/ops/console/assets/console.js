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
