import { defineConfig } from 'tsdown';

/**
 * The SDK as a package, two builds:
 * - the library: one ESM entry with its declarations, for browsers, Node and React Native alike
 *   (platform-neutral: no Node built-ins), tfjs left to the app (a peer dependency);
 * - the `fedge` operator CLI (`bin`), for Node only, with commander as its one dependency.
 */
export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    dts: true,
    sourcemap: true,
    clean: ['dist/index.*'],
    outDir: 'dist',
    tsconfig: 'tsconfig.json',
  },
  {
    entry: { cli: 'src/cli/main.ts' },
    format: 'esm',
    platform: 'node',
    target: 'node20',
    dts: false,
    sourcemap: true,
    clean: ['dist/cli.*'],
    outDir: 'dist',
    tsconfig: 'tsconfig.cli.json',
  },
]);
