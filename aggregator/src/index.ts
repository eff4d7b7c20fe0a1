/**
 * @module Worker entry: the edge API (Hono) and the master aggregator Durable Object class.
 */
import { createApp } from './api/app.ts';

export { TaskAggregator } from './master/task-aggregator.ts';

const app = createApp();

export default { fetch: app.fetch } satisfies ExportedHandler<Env>;
