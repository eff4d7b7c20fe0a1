// Starts Swagger UI on /docs against the platform's own OpenAPI document (same origin).
// A file of its own, not an inline script, so the page's CSP allows scripts from 'self' only.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  displayOperationId: true,
  displayRequestDuration: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null,
});
