// The package as a user installs it: npm pack, then a global install into a
// scratch prefix with no compiler on PATH (only node and sh), no network
// (--offline) and an empty npm cache; the bare `tsvmm` then boots the demo
// guest. Works because the tarball carries the prebuilt N-API addon
// (prebuilds/, from npm run prebuilds), the demo guest and its dependencies
// (bundleDependencies); node-gyp-build loads the prebuild, there being no build/.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { which } from '../support/qemu';
import { ROOT } from '../support/tsvmm';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-package-'));

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const result = spawnSync(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, encoding: 'utf8', timeout: 180_000 });
  return { ...result, explain: `${command} ${args.join(' ')}: exit ${result.status}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}` };
}

test('npm pack + npm install -g --offline with no compiler on PATH: the bare tsvmm boots the demo guest from the prebuilt addon', () => {
  const prebuilt = run(process.execPath, [path.join(ROOT, 'scripts', 'prebuilds.js')]);
  assert.is(prebuilt.status, 0, prebuilt.explain);
  const npmOnPath = which('npm');
  if (!npmOnPath) throw new Error('npm is not on PATH');
  const npm = fs.realpathSync(npmOnPath);
  const packed = run(process.execPath, [npm, 'pack', '--ignore-scripts', '--pack-destination', tmp, '--json']);
  assert.is(packed.status, 0, packed.explain);
  const [{ filename, files }] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const contents = files.map((file) => file.path);
  for (const wanted of ['dist/main.js', 'dist/index.js', 'dist/index.d.ts', 'guests/out/hello.elf', 'prebuilds/linux-x64/tsvmm.node', 'binding.gyp', 'native/tsvmm_native.cc']) {
    assert.ok(contents.includes(wanted), `${wanted} is in the tarball`);
  }
  assert.not.ok(contents.some((file) => file.startsWith('build/') || file.startsWith('dist-test/') || file.startsWith('test/')), 'no build/, tests or test output');

  // node and sh only: npm runs install scripts with sh; no cc, gcc, g++, make or python3.
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
  const env = { HOME: tmp, PATH: bin, npm_config_cache: path.join(tmp, 'empty-npm-cache'), npm_config_update_notifier: 'false' };
  assert.is(run('/bin/sh', ['-c', 'command -v cc gcc g++ make python3 node-gyp'], { env }).stdout, '', 'no compiler on PATH');
  const prefix = path.join(tmp, 'prefix');
  const installed = run(process.execPath, [npm, 'install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', '--foreground-scripts', path.join(tmp, filename)], { cwd: tmp, env });
  assert.is(installed.status, 0, installed.explain);
  const pkg = path.join(prefix, 'lib', 'node_modules', 'tsvmm');
  assert.not.ok(fs.existsSync(path.join(pkg, 'build')), 'nothing was compiled');
  assert.ok(fs.existsSync(path.join(pkg, 'prebuilds', 'linux-x64', 'tsvmm.node')));

  const tsvmm = path.join(prefix, 'bin', 'tsvmm');
  const demo = run(tsvmm, [], { cwd: tmp, env });
  assert.is(demo.status, 0, demo.explain);
  assert.is(demo.stdout, 'hello: long mode ok\n', demo.explain);
  assert.is(demo.stderr, '', demo.explain);
  assert.match(run(tsvmm, ['--help'], { cwd: tmp, env }).stdout, /^usage: tsvmm \[options\]/);
});

test.run();
