// Progressive enhancement only: every page works without JavaScript.
// Filter forms marked data-autosubmit submit (through htmx) when a select changes.
document.addEventListener("change", function (event) {
  var form = event.target.closest("form[data-autosubmit]");
  if (form && event.target.tagName === "SELECT") {
    form.requestSubmit();
  }
});
