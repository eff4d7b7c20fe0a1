import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './aggregator/src/db/schema.ts',
  out: './migrations',
});
