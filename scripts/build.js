#!/usr/bin/env node
// Builds everything tsvmm needs from source: the native addon (when the
// install step has not), the TypeScript, and the bundled guests.
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

if (!fs.existsSync(path.join(root, 'build', 'Release', 'tsvmm_native.node'))) {
  step('native addon', process.execPath, [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild']);
}
step('TypeScript', process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json']);
if (fs.existsSync(path.join(root, 'guests', 'Makefile'))) {
  step('guests', 'make', ['-s', '-C', 'guests']);
}
