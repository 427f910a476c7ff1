// What package.json and the CI script promise a user: npm test installs
// nothing (npm run setup does, and CI calls it first), and the test runner's
// notices reach the terminal at once.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../support/tsvmm';

const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

test('npm test installs nothing: neither pretest nor test runs the tool installer; npm run setup does', () => {
  for (const name of ['pretest', 'test', 'posttest']) {
    assert.not.match(manifest.scripts[name] ?? '', /ensure-test-tools|apt-get/, `${name}: ${manifest.scripts[name]}`);
  }
  assert.is(manifest.scripts.setup, 'node scripts/ensure-test-tools.js');
  assert.is(manifest.scripts['fetch-kernel'], 'node scripts/fetch-kernel.js');
});

test('.ci/run runs npm run setup before npm test', () => {
  const commands = fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8').split('\n').map((line) => line.replace(/#.*/, '').trim());
  const setup = commands.indexOf('npm run setup');
  assert.ok(setup >= 0, 'npm run setup is called');
  assert.ok(setup < commands.indexOf('npm test'), 'before npm test');
});

test('a test\'s notice goes to the fd scripts/run-tests.js hands it (its own stdout), not into the captured output', () => {
  const script = `require(${JSON.stringify(path.join(ROOT, 'dist-test', 'test', 'support', 'notice.js'))}).notice('downloading 71 MB')`;
  const child = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, TSVMM_TEST_NOTICE_FD: '3' },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  assert.is(child.status, 0, child.stderr);
  assert.is(child.output[3], 'downloading 71 MB\n');
  assert.is(child.stdout, '');
  assert.is(child.stderr, '');
});

test.run();
