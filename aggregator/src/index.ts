/**
 * @module Worker entry: the edge API (Hono), the master aggregator Durable Object class and its shards' class.
 */
import { createApp } from './api/app.ts';

export { RangeAggregator } from './master/range-aggregator.ts';
export { RoundShard } from './master/round-shard.ts';
export { TaskAggregator } from './master/task-aggregator.ts';

const app = createApp();

export default { fetch: app.fetch } satisfies ExportedHandler<Env>;
