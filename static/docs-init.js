// Starts Swagger UI on /docs. Kept out of docs.html so the page needs no inline script
// (rtchat's Content-Security-Policy forbids them).
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.yaml",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  // BaseLayout: no top bar, so there is no box inviting the reader to load another spec.
  layout: "BaseLayout",
  deepLinking: true,
  displayOperationId: true,
  displayRequestDuration: true,
  // The public validator badge would call validator.swagger.io: no external requests.
  validatorUrl: null,
  // Keep the token from "Authorize" across reloads (stored in this browser's localStorage).
  persistAuthorization: true,
  // Never read ?url= / ?configUrl= from the page address: the page only shows rtchat's spec.
  queryConfigEnabled: false,
  tryItOutEnabled: true,
});
