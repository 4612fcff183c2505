'use strict';
// Loads the compiled addon built for this platform. `npm run build` names it
// `cliproxy.<platform>-<arch>[-<abi>].node` (the napi-rs convention), so one package directory can hold the
// binaries of several platforms side by side.

const { existsSync } = require('node:fs');
const path = require('node:path');

/** Whether this Linux uses musl (Alpine) rather than glibc: the two need different binaries. */
function isMusl() {
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
  const header = report && (typeof report === 'string' ? JSON.parse(report).header : report.header);
  return !header?.glibcVersionRuntime;
}

/** The platform part of the binary's name, as `napi build --platform` writes it. */
function platformTriple() {
  const { platform, arch } = process;
  switch (platform) {
    case 'linux':
      if (arch === 'arm') return 'linux-arm-gnueabihf';
      return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
    case 'win32':
      return `win32-${arch}-msvc`;
    case 'darwin':
      return `darwin-${arch}`;
    default:
      return `${platform}-${arch}`;
  }
}

const triple = platformTriple();
const file = path.join(__dirname, `cliproxy.${triple}.node`);
if (!existsSync(file)) {
  throw new Error(
    `cliproxy: no native binary for ${triple} (looked for ${file}). ` +
      'Build it from a source checkout with `npm install && npm run build` in bindings-node/.',
  );
}
module.exports = require(file);
