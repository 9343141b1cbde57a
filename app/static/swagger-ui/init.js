// Starts Swagger UI on /docs (app/templates/swagger_ui.html). Not part of swagger-ui-dist: the
// page carries its settings as JSON data, so it needs no inline script and its
// Content-Security-Policy can allow scripts from this origin only.
(function () {
  "use strict";
  var settings = JSON.parse(document.getElementById("swagger-ui-settings").textContent);
  var config = Object.assign({ url: settings.url, dom_id: settings.dom_id }, settings.config);
  window.addEventListener("load", function () {
    window.ui = SwaggerUIBundle(config);
  });
})();
