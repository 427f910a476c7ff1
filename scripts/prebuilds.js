#!/usr/bin/env node
// npm run prebuilds: the native addon as prebuilds/linux-x64/*.napi.node
// (prebuildify; N-API, so one build serves Node 20 and later), which the
// package ships so that installing it needs no compiler: node-gyp-build
// loads a prebuild when there is no build/ (the package has none). Built in
// a scratch copy of binding.gyp and native/, so the checkout's own build/,
// which `npm run build` and other builds use, is never touched. Skipped
// when the prebuild is newer than every native source.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const sources = ['binding.gyp', 'package.json', ...fs.readdirSync(path.join(root, 'native')).map((name) => path.join('native', name))];
const outDir = path.join(root, 'prebuilds', `${os.platform()}-${os.arch()}`);

function newest(files) {
  return Math.max(...files.map((file) => fs.statSync(path.join(root, file)).mtimeMs));
}

const built = fs.existsSync(outDir) ? fs.readdirSync(outDir).filter((name) => name.endsWith('.node')) : [];
if (built.length > 0 && Math.min(...built.map((name) => fs.statSync(path.join(outDir, name)).mtimeMs)) > newest(sources)) {
  console.log(`prebuilds: ${path.relative(root, path.join(outDir, built[0]))} is up to date`);
  process.exit(0);
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-prebuild-'));
try {
  for (const file of sources) {
    fs.mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true });
    fs.copyFileSync(path.join(root, file), path.join(scratch, file));
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'));
  // Node's own headers when they are installed (Debian's nodejs has them under /usr): without them node-gyp downloads them.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) process.env.npm_config_nodedir = prefix;
  const prebuildify = require('prebuildify');
  // One N-API build, compiled against this Node (prebuildify's default target is the newest Node, whose headers it would download).
  prebuildify({ cwd: scratch, out: root, napi: true, strip: true, targets: [{ runtime: 'node', target: process.versions.node }] }, (error) => {
    fs.rmSync(scratch, { recursive: true, force: true });
    if (error) {
      console.error(`prebuilds: ${error.message}`);
      process.exit(1);
    }
    const made = fs.readdirSync(outDir).filter((name) => name.endsWith('.node'));
    console.log(`prebuilds: ${made.map((name) => path.relative(root, path.join(outDir, name))).join(', ')}`);
  });
} catch (error) {
  fs.rmSync(scratch, { recursive: true, force: true });
  throw error;
}
