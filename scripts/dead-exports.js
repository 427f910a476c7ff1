#!/usr/bin/env node
// The dead-export check of `npm run lint`: every export of src/ must be used
// by another module (tests count: they are users of what they test), except
// the entry points that are loaded by path. Types may be exported for users.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
/** Exports loaded by path or by name at run time, not through an import. */
const ENTRY_POINTS = new Map([
  ['src/index.ts', '*'], // the library entry: everything it exports is for users
  ['src/main/cli/cli.ts', ['main']], // required by src/main.ts after the workers start
  ['src/main/io/block-worker.ts', ['default']], // piscina loads the worker file
]);

const result = spawnSync(process.execPath, [require.resolve('ts-unused-exports/bin/ts-unused-exports'), 'tsconfig.test.json',
  '--excludePathsFromReport=test/', '--allowUnusedTypes', '--allowUnusedEnums'], { cwd: root, encoding: 'utf8' });
const findings = [];
for (const line of result.stdout.split('\n')) {
  const match = /^(\/.*?\.ts): (.*)$/.exec(line.trim());
  if (!match) continue;
  const file = path.relative(root, match[1]);
  const allowed = ENTRY_POINTS.get(file) ?? [];
  const names = match[2].split(',').map((name) => name.trim()).filter((name) => allowed !== '*' && !allowed.includes(name));
  if (names.length > 0) findings.push(`${file}: ${names.join(', ')}`);
}
if (findings.length > 0) {
  console.log(`dead exports (export nothing no other module uses; make them module-local or delete them):\n${findings.map((f) => `  ${f}`).join('\n')}`);
  process.exit(1);
}
console.log('dead exports: none');
