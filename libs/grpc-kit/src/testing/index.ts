// Test helpers for packages that build on the kit: the echo service and a reflection client.
export { EchoService, echoService } from './echo.js';
export { reflectionClient } from './reflection-client.js';
