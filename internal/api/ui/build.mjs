// Builds the dashboard into dist/: app.js and app.css bundled by esbuild
// from src/, and index.html. `make ui` runs it after `npm ci`; the output
// is checked in, so building the server needs no Node.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

const out = process.argv[2] ?? 'dist';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'eof',
  outdir: out,
  logLevel: 'warning',
});
copyFileSync('src/index.html', `${out}/index.html`);
