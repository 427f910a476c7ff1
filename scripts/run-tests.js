#!/usr/bin/env node
// Runs every test file (uvu suites compiled to dist-test/) one at a time,
// because KVM tests start real VMs and this machine has two cores, then prints
// one closing line "N passed, N failed, N skipped" and exits non-zero on any
// failure. Arguments filter test files by substring: `npm test -- serial`.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const filters = process.argv.slice(2);

// A type error fails the run, but tsc still emits JavaScript, so the suites
// run anyway and the report shows everything that is wrong at once.
const compile = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.test.json'], { cwd: root, stdio: 'inherit' });
const typeErrors = compile.status === 0 ? 0 : 1;
if (typeErrors) console.log('FAIL TypeScript type check of src/ and test/ (see the errors above)');

function findTests(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return findTests(full);
    return entry.name.endsWith('.test.js') ? [full] : [];
  });
}

const testRoot = path.join(root, 'dist-test', 'test');
const files = findTests(testRoot)
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort((a, b) => {
    // unit tests first: they are fast and explain a KVM failure when one breaks
    const rank = (f) => (f.includes(`${path.sep}unit${path.sep}`) ? 0 : 1);
    return rank(a) - rank(b) || a.localeCompare(b);
  });

const stripAnsi = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');
const totals = { passed: 0, failed: typeErrors, skipped: 0 };
const failedFiles = [];
const FILE_TIMEOUT_MS = 5 * 60 * 1000; // the slowest file (Debian kernel boots) takes ~80 s

/** The fd a test file writes notices on (test/support/notice.ts): this process's stdout, so they show at once. */
const NOTICE_FD = 3;

for (const file of files) {
  const name = path.relative(testRoot, file);
  // Said before the file runs: a KVM file can take a minute, and its output comes only when it ends.
  console.log(`run  ${name}`);
  const started = Date.now();
  const result = spawnSync(process.execPath, [file], {
    cwd: root,
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', TSVMM_TEST_NOTICE_FD: String(NOTICE_FD) },
    stdio: ['ignore', 'pipe', 'pipe', 1],
    encoding: 'utf8',
    timeout: FILE_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = stripAnsi(`${result.stdout || ''}${result.stderr || ''}`);
  const number = (label) => {
    const match = output.match(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm'));
    return match ? Number(match[1]) : undefined;
  };
  const total = number('Total');
  const passed = number('Passed');
  const skipped = number('Skipped') ?? 0;
  let failed;
  if (total === undefined || passed === undefined) {
    failed = 1; // crashed or timed out before uvu could report
  } else {
    failed = total - passed; // uvu's Total leaves skipped tests out
    totals.passed += passed;
    totals.skipped += skipped;
  }
  if (result.status !== 0 && failed === 0) failed = 1;
  totals.failed += failed;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const verdict = failed > 0 ? 'FAIL' : 'ok';
  console.log(`${verdict.padEnd(4)} ${name} (${passed ?? 0} passed, ${failed} failed, ${skipped} skipped, ${seconds}s)`);
  if (failed > 0) {
    failedFiles.push(name);
    const why = result.error ? `\n${result.error.message}` : '';
    console.log(output.split('\n').map((line) => `     | ${line}`).join('\n') + why);
  }
}

if (failedFiles.length > 0) console.log(`failed files: ${failedFiles.join(', ')}`);
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 || files.length === 0 ? 1 : 0);
