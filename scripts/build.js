#!/usr/bin/env node
// Builds everything tsvmm needs from source: the native addon (when the
// install step has not), the TypeScript, and the bundled guests. What is up
// to date is not built again (npm start runs this first): tsc only when a
// file under src/ or tsconfig.json changed since its last run, the guests by
// make's own rules.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function step(name, command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.error) {
    console.error(`build: ${name} could not start: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    console.error(`build: ${name} failed (exit ${result.status})`);
    process.exit(result.status || 1);
  }
}

/** The newest modification time among `entries` (files, or directories searched whole), in ms. */
function newestMtime(entries) {
  let newest = 0;
  for (const entry of entries) {
    const full = path.join(root, entry);
    if (!fs.existsSync(full)) continue;
    const stats = fs.statSync(full);
    newest = Math.max(newest, stats.isDirectory()
      ? newestMtime(fs.readdirSync(full).map((name) => path.join(entry, name)))
      : stats.mtimeMs);
  }
  return newest;
}

const addon = path.join(root, 'build', 'Release', 'tsvmm_native.node');
if (!fs.existsSync(addon)) {
  step('native addon', process.execPath, [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild']);
} else if (fs.statSync(addon).mtimeMs < newestMtime(['native', 'binding.gyp'])) {
  // Not rebuilt on its own: whoever changes native/ rebuilds it when the change is ready.
  console.log('build: the native addon is older than native/ or binding.gyp; rebuild it with npx node-gyp rebuild');
}

// Set to the time tsc started, so that a file saved while it ran counts as newer next time.
const tscStamp = path.join(root, '.cache', 'tsc-stamp');
const tscInputs = newestMtime(['src', 'tsconfig.json']);
if (fs.existsSync(tscStamp) && fs.existsSync(path.join(root, 'dist', 'main.js')) && fs.statSync(tscStamp).mtimeMs >= tscInputs) {
  console.log('build: TypeScript up to date (dist/ is newer than src/)');
} else {
  const started = new Date();
  step('TypeScript', process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json']);
  fs.mkdirSync(path.dirname(tscStamp), { recursive: true });
  fs.writeFileSync(tscStamp, '');
  fs.utimesSync(tscStamp, started, started);
}
if (fs.existsSync(path.join(root, 'guests', 'Makefile'))) {
  step('guests', 'make', ['-s', '-C', 'guests']);
}
