// Progressive enhancement only: every page works without JavaScript.
// Filter forms marked data-autosubmit submit (through htmx) when a select changes.
document.addEventListener("change", function (event) {
  var form = event.target.closest("form[data-autosubmit]");
  if (form && event.target.tagName === "SELECT") {
    form.requestSubmit();
  }
});

// htmx does not swap an error answer: when the server is too busy (503, config/errors.py), its
// message is shown above the page's content instead of the request failing silently.
document.addEventListener("htmx:responseError", function (event) {
  var xhr = event.detail.xhr;
  var main = document.getElementById("content");
  if (!xhr || xhr.status !== 503 || !main) {
    return;
  }
  var answer = new DOMParser().parseFromString(xhr.responseText, "text/html");
  var alert = answer.getElementById("service-unavailable");
  if (!alert) {
    return;
  }
  var previous = document.getElementById("service-unavailable");
  if (previous) {
    previous.remove();
  }
  main.prepend(document.importNode(alert, true));
});
