import { defineConfig } from 'tsdown';

/**
 * The SDK as a package: one ESM entry with its declarations, for browsers, Node and React Native
 * alike (platform-neutral: no Node built-ins), tfjs left to the app (a peer dependency).
 */
export default defineConfig({
  entry: ['src/index.ts'],
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  dts: true,
  sourcemap: true,
  clean: true,
  outDir: 'dist',
  tsconfig: 'tsconfig.json',
});
